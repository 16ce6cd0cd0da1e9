"""``mi-bench eval``: clean accuracy of a checkpoint with and without an inference-time defense."""

from __future__ import annotations

import json

import click

from mi_bench.commands.common import (
    checkpoint_options,
    defense_options,
    defense_settings,
    parse_key_values,
    seed_option,
)
from mi_bench.commands.runtime import device_options, start


@click.command("eval")
@checkpoint_options
@defense_options
@click.option("--data-dir", default=None, help="data folder (else MI_BENCH_DATA, sample)")
@click.option("--n-examples", type=click.IntRange(min=1), default=None,
              help="first n test images [all]")
@click.option("--eval-repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="independent draws of a randomized defense per example")
@seed_option()
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@device_options
def evaluate(checkpoint, arch, arch_opt, defense, defense_opt, mi_n, mi_lambda, mi_pool,
             mi_threshold, max_batch, data_dir, n_examples, eval_repeats, seed, batch_size,
             as_json, device_spec, tf32) -> None:
    """Clean accuracy without and with the chosen defense."""
    from mi_bench.data import load_split
    from mi_bench.defenses import get_defense
    from mi_bench.device import describe
    from mi_bench.evaluate import clean_accuracy
    from mi_bench.models.zoo import load_classifier

    opts = defense_settings(defense, defense_opt, mi_n, mi_lambda, mi_pool, mi_threshold)
    device, _ = start(device_spec, tf32)
    model, card = load_classifier(checkpoint, arch, parse_key_values(arch_opt, "--arch-opt"))
    model.to(device)
    test = load_split(card.get("dataset", "cifar10"), "test", data_dir)
    if n_examples is not None:
        test = test.head(n_examples)
    chosen = get_defense(defense, card, opts, data_dir)
    rows = [{"defense": "none", **clean_accuracy(model, test, 1, batch_size)}]
    if chosen.family != "none":
        defended = chosen.wrap(model, seed, None, max_batch)
        rows.append({"defense": chosen.name, "settings": chosen.settings(),
                     **clean_accuracy(defended, test, eval_repeats, batch_size, progress=True)})
    result = {"checkpoint": card.get("name"), "data": test.source, "device": describe(device),
              "card_clean_acc": card.get("clean_acc"), "seed": seed, "results": rows}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{card.get('name')} ({card.get('arch')}, {card.get('method')}) on {len(test)} "
               f"images of {test.source}")
    for r in rows:
        extra = f"  worst case over {r['draws']} draws {r['worst_acc']:.2%}" if r["draws"] > 1 else ""
        settings = f"  {r['settings']}" if "settings" in r else ""
        click.echo(f"  {r['defense']:<14} clean accuracy {r['acc']:.2%}{extra}{settings}")
