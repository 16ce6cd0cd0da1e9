"""The ``mi-bench`` command line: train, eval, attack, sweep, leaderboard, report.

Every user error becomes one ``error: ...`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

import click

from mi_bench.errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mi-bench")
def cli() -> None:
    """Benchmark Mixup Inference (Pang et al., ICLR 2020) under standardized, adaptive attacks."""


from mi_bench.commands import attack_cmd, eval_cmd, report_cmd, sweep_cmd, train_cmd

cli.add_command(train_cmd.train)
cli.add_command(eval_cmd.evaluate)
cli.add_command(attack_cmd.attack)
cli.add_command(report_cmd.leaderboard)
cli.add_command(report_cmd.report)
cli.add_command(sweep_cmd.sweep)


def main() -> None:
    """Console entry point: user errors print one line and exit 2."""
    try:
        cli.main(standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; finished batches are saved, rerun the same command to resume",
                   err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
