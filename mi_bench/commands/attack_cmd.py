import click


@click.command()
def attack():
    """placeholder"""
