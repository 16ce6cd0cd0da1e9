import click


@click.command()
def leaderboard():
    """placeholder"""
@click.command()
def report():
    """placeholder"""
