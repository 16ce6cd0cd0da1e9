"""The attack orchestrator: one run = one suite on one model and defense, per seed, per eps.

For every seed it: builds the defense and the attacked model with seeded generators; runs
AutoAttack-style sanity checks; estimates the cost; attacks batch by batch (each finished batch
is stored, so a killed run resumes where it stopped); checks every adversarial example for
validity; evaluates clean and adversarial accuracy over R independent MI draws; checks for
gradient masking; and writes one record. The attack's randomness in batch b under seed s
depends only on (s, b); the evaluation's selection and scoring draws (``draws.py``) on the
record's identity and b; so a resumed run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mi_bench import distributed
from mi_bench.attacks.checks import (
    check_valid,
    large_eps_check,
    model_flags,
    weaker_attack_stronger,
)
from mi_bench.attacks.config import AttackConfig
from mi_bench.attacks.draws import Draws, stream
from mi_bench.attacks.registry import SuiteRequest, get_suite
from mi_bench.attacks.suites import DecisionView, PassCounter, Suite
from mi_bench.data import load_split
from mi_bench.defenses import get_defense
from mi_bench.defenses.randomness import check_randomness
from mi_bench.device import describe, precision_label
from mi_bench.errors import UserError
from mi_bench.evaluate import correct_matrix
from mi_bench.models.zoo import load_classifier
from mi_bench.results import PROTOCOL, ResultStore, package_versions, record_key

# a record's identity, in the order ``AttackRun.identity`` builds it (surrogate: transfer only)
IDENTITY = ("protocol", "checkpoint", "checkpoint_sha256", "defense", "defense_settings", "suite",
            "attack", "attack_draws", "norm", "eps", "seed", "n", "eval_repeats",
            "select_repeats", "data", "batch_size", "surrogate", "surrogate_sha256")
# what fixes a batch's clean evaluation draws (with the batch bounds)
CLEAN_IDENTITY = ("protocol", "checkpoint_sha256", "defense", "defense_settings", "seed",
                  "eval_repeats", "select_repeats", "batch_size")


def batch_seeds(seed: int, batch: int) -> dict[str, int]:
    """The attack's streams per (seed, batch, role), so that resuming at a batch leaves every
    other draw as it was. ``attack`` is the seed pyautoattack gets; ``decisions`` feeds the
    attack's own no-grad choices. Evaluation draws are not here: see ``draws.stream``."""
    roles = ("attack_mi", "attack", "decisions")
    return {r: int(q.generate_state(1)[0])
            for r, q in zip(roles, np.random.SeedSequence([seed, batch]).spawn(len(roles)))}


class AttackRun:
    """Everything one ``mi-bench attack`` invocation needs, built once."""

    def __init__(self, cfg: AttackConfig, store: ResultStore, progress: bool = True,
                 log=print, device: torch.device | str | None = None,
                 model: tuple[nn.Module, dict] | None = None, defense=None):
        """``model`` (module, card) and ``defense`` (a built Defense) come from the Python API,
        which builds them itself; otherwise ``cfg`` names them."""
        cfg.validate()
        self.cfg, self.store, self.progress, self.log = cfg, store, progress, log
        self.device = torch.device(device or "cpu")  # not in the identity: CPU and GPU share
        model, self.card = model or load_classifier(cfg.checkpoint, cfg.arch, cfg.arch_kwargs)
        model.to(self.device)
        for p in model.parameters():
            p.requires_grad_(False)  # attacks need input gradients only
        self.base = PassCounter(model)
        self.defense = defense or get_defense(cfg.defense, self.card, cfg.defense_opts,
                                              cfg.data_dir)
        self.randomness_checked = False
        self.test = load_split(self.card.get("dataset", "cifar10"), "test", cfg.data_dir
                               ).head(cfg.n_examples)
        # the images' content, not their path, identifies a result: a rerun elsewhere finds it
        self.data_id = f"{self.test.dataset}/{self.test.split}:{self.test.sha256()[:16]}"
        self.entry = get_suite(cfg.suite)
        if self.defense.randomized and not self.entry.randomized:
            raise UserError(f"suite {cfg.suite} does not apply to randomized defenses such as "
                            f"{cfg.defense}")
        self.surrogate = None
        if self.entry.target == "surrogate":
            s_model, self.surrogate_card = load_classifier(cfg.surrogate)
            s_model.eval().to(self.device)
            for p in s_model.parameters():
                p.requires_grad_(False)
            self.surrogate = PassCounter(s_model)
        self.counters = [m for m in (self.base, self.surrogate) if m is not None]

    @property
    def stochastic_attack(self) -> bool:
        """Adaptive suites on a randomized defense differentiate a stochastic model (EOT)."""
        return self.defense.randomized and self.entry.adaptive

    # -- models ---------------------------------------------------------------------------
    def eval_model(self, seed: int) -> nn.Module:
        """The defense as evaluated (R draws of it make an accuracy)."""
        return self.defense.wrap(self.base, seed, None, self.cfg.max_batch)

    def attack_model(self, seed: int) -> nn.Module:
        """What the attack differentiates: the defense with K draws per forward (adaptive), the
        base model (oblivious) or the surrogate (transfer)."""
        if self.entry.target == "base":
            return self.base
        if self.entry.target == "surrogate":
            return self.surrogate
        return self.defense.wrap(self.base, seed, self.attack_draws(), self.cfg.max_batch)

    def attack_draws(self) -> int | None:
        """K: the defense's draws inside each attack forward (None: the attack sees no draws)."""
        if not self.defense.randomized or not self.entry.adaptive:
            return None
        return self.cfg.attack_draws or self.defense.eval_draws()

    def suite(self, model: nn.Module, partners: int | None = None) -> Suite:
        """The configured suite attacking ``model``; ``partners`` overrides K for estimates."""
        c = self.cfg
        k = partners or self.attack_draws()
        return self.entry.build(SuiteRequest(
            cfg=c, model=model, draws=k,
            calls_cost=self.defense.passes_per_call(k) if self.entry.adaptive else 1,
            randomized=self.defense.randomized, stochastic=self.stochastic_attack,
            num_classes=self.card.get("num_classes", 10),
            steps=c.steps or self.entry.default_steps,
            defended=lambda s, d: self.defense.wrap(self.base, s, d, c.max_batch),
            passes_per_call=self.defense.passes_per_call))

    # -- identity and cost ------------------------------------------------------------------
    def identity(self, seed: int) -> dict:
        c = self.cfg
        suite = self.suite(self.attack_model(seed))
        ident = {
            "protocol": PROTOCOL,
            "checkpoint": self.card.get("name"), "checkpoint_sha256": self.card.get("sha256"),
            "defense": self.defense.name, "defense_settings": self.defense.settings(),
            "suite": c.suite, "attack": suite.settings(), "attack_draws": self.attack_draws(),
            "norm": c.norm, "eps": round(c.eps, 10), "seed": seed,
            "n": c.n_examples, "eval_repeats": c.eval_repeats,
            "select_repeats": c.select_repeats, "data": self.data_id,
            "batch_size": c.batch_size,
        }
        if self.surrogate is not None:
            ident["surrogate"] = self.surrogate_card.get("name")
            ident["surrogate_sha256"] = self.surrogate_card.get("sha256")
        return ident

    def eval_passes_per_image(self, suite: Suite, clean: bool = True) -> int:
        """Clean and adversarial evaluation: S + R draws of the defense each (1 if
        deterministic), for the suite's point (the ensemble: each member's) and, unless another
        record already paid for them (``clean=False``: they are cached), the clean image."""
        c = self.cfg
        repeats = c.select_repeats + c.eval_repeats if self.defense.randomized else 1
        points = int(clean) + max(1, len(getattr(suite, "members", ())))
        return points * repeats * self.defense.passes_per_prediction()

    # -- sanity checks ----------------------------------------------------------------------
    def sanity_checks(self, seed: int) -> dict:
        """AutoAttack's checks before attacking: randomness, output range, zero gradients."""
        m = min(16, len(self.test))
        x, y = self.test.float_images(0, m).to(self.device), self.test.labels[:m].to(self.device)
        model = self.attack_model(seed)
        return model_flags(model, x, y, aa_randomness=self.suite(model).aa_randomness_check)

    def large_eps_check(self, seed: int) -> dict:
        """At a huge eps any classifier must fall to ~0%; if not, gradients are masked."""
        m = min(self.cfg.sanity_n, self.cfg.n_examples)
        x, y = self.test.float_images(0, m).to(self.device), self.test.labels[:m].to(self.device)
        eot = self.cfg.eot_iter or (5 if self.defense.randomized else 1)
        return large_eps_check(self.attack_model(seed + 7919), self.eval_model(seed + 7919),
                               x, y, self.cfg.norm, eot, seed + 7919)

    # -- the run ----------------------------------------------------------------------------
    def run_seed(self, seed: int) -> dict:
        c = self.cfg
        if self.entry.run_seed is not None:  # a suite with its own loop and record
            return self.entry.run_seed(self, seed)
        world = distributed.world()  # under torchrun: this rank attacks batches b % size == rank
        ident = self.identity(seed)
        key = record_key(ident)
        if self.store.has(key):
            if world.is_main:
                self.log(f"seed {seed}: record {key} exists, skipped")
            return self.store.load(key)
        if not self.randomness_checked:  # a wrong `randomized` is refused before any attack
            m = min(4, len(self.test))
            check_randomness(self.defense, self.base, self.test.float_images(0, m).to(
                self.device), seed, self.cfg.max_batch)
            self.randomness_checked = True
        flags = self.sanity_checks(seed) if world.is_main else {}  # only rank 0 writes them
        for name, value in flags.items():
            if name == "autoattack_randomness_check":
                self.log(f"WARNING (AutoAttack): {value}")
        if flags.get("zero_grad_fraction", 0) > 0:
            self.log(f"WARNING: {flags['zero_grad_fraction']:.0%} of sanity examples have zero "
                     "input gradient")
        n = c.n_examples
        suite = self.suite(self.attack_model(seed))
        attack_ppi = suite.passes_per_image()
        estimate = n * (attack_ppi + self.eval_passes_per_image(suite))
        done = self.store.done_batches(key)
        n_batches = math.ceil(n / c.batch_size)
        mine = [b for b in range(n_batches) if world.owns(b)]
        share = sum(min((b + 1) * c.batch_size, n) - b * c.batch_size for b in mine)
        log = self.log if world.is_main else (lambda m: None)
        log(f"seed {seed}: {c.suite} on {ident['checkpoint']} + {c.defense}, eps {c.eps_label}"
            f" {c.norm}, n {n}, record {key}; estimated cost {estimate:,} "
            f"base-model passes if every attack runs to the end ({attack_ppi:,} per image "
            "for the attack)"
            + (f"; resuming after {len(done)}/{n_batches} batches" if done else "")
            + (f"; {world.size} ranks, {describe(self.device)}" if world.size > 1 else ""))
        bar = tqdm(total=estimate * share // n, unit="pass", unit_scale=True,
                   desc=f"seed {seed}{world.label()}", file=sys.stderr,
                   disable=not self.progress or not world.is_main)
        for b in mine:
            lo, hi = b * c.batch_size, min((b + 1) * c.batch_size, n)
            if b in done:
                bar.update(int(done[b]["forwards"]))
                continue
            for m in self.counters:  # live progress: every base-model image moves the bar
                m.on_forward = bar.update
            try:
                done[b] = self._batch(seed, b, lo, hi, ident)
            finally:
                for m in self.counters:
                    m.on_forward = None
            self.store.save_batch(key, b, done[b])
            adv_so_far = np.concatenate([done[i]["adv"] for i in sorted(done)], 1)
            bar.set_postfix(robust=f"{adv_so_far.mean():.3f}")
        bar.close()
        if world.size > 1:  # every rank's batches are in the store; rank 0 writes the record
            world.barrier()
            if not world.is_main:
                world.barrier()  # until it is written
                return self.store.load(key)
            done = self.store.done_batches(key)
            missing = sorted(set(range(n_batches)) - set(done))
            if missing:
                raise UserError(f"record {key}: batches {missing[:10]} are missing from "
                                f"{self.store.root} after every rank finished; is --out on a "
                                "filesystem all ranks share?")
        joined = {k: np.concatenate([done[i][k] for i in range(n_batches)], axis=-1)
                  for k in done[0] if k in ARRAYS or k.startswith("member_")}
        clean, adv = joined["clean"], joined["adv"]  # scoring draws; adv: the chosen candidate
        warnings = sorted({str(w) for i in done for w in done[i]["warnings"]})
        own = [done[i]["own"] for i in range(n_batches) if "own" in done[i]]
        members = sorted(k.removeprefix("member_") for k in joined if k.startswith("member_"))
        record = {
            "key": key, **ident, "eps_label": c.eps_label, "data_path": self.test.source,
            "clean_acc": float(clean.mean()), "clean_worst_acc": float(clean.all(0).mean()),
            "robust_acc": float(adv.mean()), "robust_worst_acc": float(adv.all(0).mean()),
            "robust_select_acc": float(joined["adv_select"].mean()),
            "forwards": int(sum(int(done[i]["forwards"]) for i in done)),
            "backwards": int(sum(int(done[i]["backwards"]) for i in done)),
            "seconds": float(sum(float(done[i]["seconds"]) for i in done)),
            "estimated_passes": estimate, "flags": flags, "warnings": warnings,
            "autoattack_own_acc": float(np.concatenate(own).mean()) if own else None,
            "ensemble": {m: _member_summary(joined[f"member_{m}"], done, m)
                         for m in members} or None,
            "model_card": {k: self.card.get(k) for k in ("arch", "method", "seed", "epochs",
                                                          "clean_acc", "dataset")},
            "forwards_per_prediction": self.defense.passes_per_prediction(),
            "defense_label": self.defense.label(), "defense_randomized":
            self.defense.randomized, "max_batch": c.max_batch,
            "versions": package_versions(), "device": describe(self.device),
            "precision": precision_label(self.device),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if c.sanity and self.entry.target == "surrogate":
            # the surrogate's gradients say nothing about the target's: not a masking check
            record["flags"]["large_eps"] = {"skipped": "transfer never sees the target's gradients"}
        elif c.sanity:
            record["flags"]["large_eps"] = self.large_eps_check(seed)
            if record["flags"]["large_eps"]["masked"]:
                self.log(f"WARNING: possible gradient masking: accuracy "
                         f"{record['flags']['large_eps']['acc']:.0%} at eps "
                         f"{record['flags']['large_eps']['eps']} ({c.norm})")
        record["flags"]["weaker_attack_stronger"] = weaker_attack_stronger(
            record, self.store.records())
        for msg in record["flags"]["weaker_attack_stronger"]:
            self.log(f"WARNING: {msg}")
        self.store.write(key, record, joined)
        world.barrier()
        return record

    def passes(self) -> tuple[int, int]:
        """Forward and backward base-model passes so far, over the target and any surrogate."""
        return (sum(m.forwards for m in self.counters), sum(m.backwards for m in self.counters))

    def _batch(self, seed: int, b: int, lo: int, hi: int, ident: dict) -> dict:
        c = self.cfg
        x = self.test.float_images(lo, hi).to(self.device)
        y = self.test.labels[lo:hi].to(self.device)
        atk_mi, atk, decide = batch_seeds(seed, b).values()
        t0 = time.time()
        clean, clean_forwards = self._clean(ident, lo, hi, x, y)
        f0, b0 = self.passes()
        model = self.attack_model(atk_mi)
        if self.stochastic_attack:
            model = DecisionView(model, self.eval_model(decide))
        suite = self.suite(model)
        outcome = suite.attack(x, y, atk, BatchJudge(self, x, y, clean, record_key(ident), b))
        check_valid(outcome.x_adv, x, c.eps, c.norm)
        f1, b1 = self.passes()
        out = {"clean": clean.score, "clean_select": clean.select, "adv": outcome.adv.score,
               "adv_select": outcome.adv.select, "forwards": np.int64(f1 - f0 + clean_forwards),
               "backwards": np.int64(b1 - b0),
               "seconds": np.float64(time.time() - t0),
               "warnings": np.array(suite.warnings, dtype=str), **outcome.extras}
        return out

    def clean_key(self, ident: dict) -> str:
        """What the clean draws of a record depend on: records that share it share them."""
        return record_key({k: ident[k] for k in CLEAN_IDENTITY})

    def _clean(self, ident: dict, lo: int, hi: int, x: torch.Tensor, y: torch.Tensor
               ) -> tuple[Draws, int]:
        """Clean correctness on selection and scoring draws, and its cost in base-model forwards.

        The clean draws depend only on the defense, seed and batch, not on the attack or eps, so
        one sweep's records share them (the clean image is one candidate of every record); their
        streams are seeded from this identity, apart from every record's own. A cached entry
        carries the cost it was made at, so a record stores the same cost whether its clean
        draws were computed or reused.
        """
        key = record_key({k: ident[k] for k in CLEAN_IDENTITY} | {
            "batch": [lo, hi], "images": self.test.head(hi).sha256()[:16]})
        cached = self.store.load_clean(key)
        if cached is not None:
            return Draws(cached["select"], cached["score"]), int(cached["forwards"])
        f0 = self.passes()[0]
        clean = evaluate_draws(self, x, y, key, 0, 0)
        forwards = self.passes()[0] - f0
        self.store.save_clean(key, {"select": clean.select, "score": clean.score}, forwards)
        return clean, forwards


# the per-example arrays of a record (with ``member_<name>`` for each ensemble member)
ARRAYS = ("clean", "clean_select", "adv", "adv_select", "chosen")


def evaluate_draws(run, x: torch.Tensor, y: torch.Tensor, identity: str, batch: int,
                   candidate: int) -> Draws:
    """S selection and R scoring draws of the defense as evaluated, at ``x``, each from its own
    stream; a deterministic defense is evaluated once, the one array serving both roles."""
    c = run.cfg
    score = correct_matrix(run.eval_model(stream(identity, batch, "score", candidate)), x, y,
                           c.eval_repeats).numpy()
    if not run.defense.randomized:
        return Draws(score, score)
    select = correct_matrix(run.eval_model(stream(identity, batch, "select", candidate)), x, y,
                            c.select_repeats).numpy()
    return Draws(select, score)


def _member_summary(own: np.ndarray, done: dict, member: str) -> dict:
    """A member's own accuracy on the points it attacked (NaN marks the points earlier members
    had broken), how many it attacked, and how many of them it made the worst candidate."""
    attacked = ~np.isnan(own)
    return {"own_acc": float(own[attacked].mean()) if attacked.any() else None,
            "attacked": int(attacked.sum()),
            "wins": int(sum(int(done[i][f"wins_{member}"]) for i in done))}


class BatchJudge:
    """The evaluation a suite's points get for one batch: validity first, then selection and
    scoring draws of the defense as evaluated (``draws.py``), seeded by the record's key, the
    batch and the candidate (``member`` i of a suite's several points draws from its own)."""

    def __init__(self, run: AttackRun, x: torch.Tensor, y: torch.Tensor, clean: Draws,
                 identity: str, batch: int):
        self.run, self.x, self.y, self.clean = run, x, y, clean
        self.identity, self.batch = identity, batch

    def evaluate(self, x_adv: torch.Tensor, idx: np.ndarray | None = None,
                 member: int | None = None) -> Draws:
        c = self.run.cfg
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        check_valid(x_adv, x, c.eps, c.norm)
        return evaluate_draws(self.run, x_adv, y, self.identity, self.batch,
                              0 if member is None else member + 1)
