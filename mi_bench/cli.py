"""The ``mi-bench`` command line: train, eval, attack, sweep, leaderboard, report.

Every user error (a bad option, file or setting) becomes one ``error: ...`` line on stderr and
exit status 2, never a traceback; Ctrl-C and SIGTERM end with one line and status 130.
"""

from __future__ import annotations

import signal
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
cli.add_command(report_cmd.migrate)
cli.add_command(sweep_cmd.sweep)


INTERRUPTED = ("interrupted; finished work is saved (attack batches, training epochs): rerun the "
               "same command to resume (train: with --resume)")


def _terminate(signum, frame) -> None:
    """SIGTERM (a scheduler's or torchrun's stop) ends like Ctrl-C: saved work, one line."""
    raise KeyboardInterrupt


def run(args: list[str] | None = None) -> int:
    """Run the CLI and return its exit status; every user error is one ``error:`` line, 2."""
    try:
        cli.main(args=args, prog_name="mi-bench", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo(INTERRUPTED, err=True)
        return 130
    except click.exceptions.UsageError as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}".replace("\n", " "), err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}".replace("\n", " "), err=True)
        return exc.exit_code
    return 0


def main() -> None:
    """Console entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(run())


if __name__ == "__main__":
    main()
