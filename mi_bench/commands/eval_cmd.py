"""``mi-bench eval``: clean accuracy of a checkpoint with and without Mixup Inference."""

from __future__ import annotations

import json

import click

from mi_bench.commands.common import mi_options, mi_overrides
from mi_bench.commands.runtime import device_options, start


@click.command("eval")
@click.option("--checkpoint", default=None, help="path or shipped name [mixup]")
@mi_options
@click.option("--data-dir", default=None, help="data folder (else MI_BENCH_DATA, sample)")
@click.option("--n-examples", type=int, default=None, help="first n test images [all]")
@click.option("--eval-repeats", type=int, default=5, show_default=True,
              help="independent MI draws per example")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@device_options
def evaluate(checkpoint, defense, mi_n, mi_lambda, mi_pool, mi_threshold, max_batch, data_dir,
             n_examples, eval_repeats, seed, batch_size, as_json, device_spec, tf32) -> None:
    """Clean accuracy without and with the chosen MI defense."""
    from mi_bench.data import load_split
    from mi_bench.device import describe
    from mi_bench.evaluate import build_defense, clean_accuracy, mi_config_for
    from mi_bench.models.zoo import load_classifier

    device, _ = start(device_spec, tf32)
    model, card = load_classifier(checkpoint)
    model.to(device)
    mi = mi_config_for(defense, card, **mi_overrides(mi_n, mi_lambda, mi_pool, mi_threshold))
    test = load_split(card.get("dataset", "cifar10"), "test", data_dir)
    if n_examples is not None:
        test = test.head(n_examples)
    rows = [{"defense": "none", **clean_accuracy(model, test, 1, batch_size)}]
    if mi is not None:
        defended = build_defense(model, card, mi, seed, data_dir, max_batch=max_batch)
        rows.append({"defense": defense, "mi": mi.as_dict(),
                     **clean_accuracy(defended, test, eval_repeats, batch_size, progress=True)})
    result = {"checkpoint": card.get("name"), "data": test.source, "device": describe(device), "card_clean_acc":
              card.get("clean_acc"), "seed": seed, "results": rows}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{card.get('name')} ({card.get('arch')}, {card.get('method')}) on {len(test)} "
               f"images of {test.source}")
    for r in rows:
        extra = f"  worst case over {r['draws']} draws {r['worst_acc']:.2%}" if r["draws"] > 1 else ""
        settings = f"  {r['mi']}" if "mi" in r else ""
        click.echo(f"  {r['defense']:<12} clean accuracy {r['acc']:.2%}{extra}{settings}")
