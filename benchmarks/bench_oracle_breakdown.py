"""Where the rest of the gap is: the stack's error on the simulated set, broken down by planted effect.

Reads a finished run (default: the `dvc repro` workspace): the stack's predictions
(``data/preds/stack.parquet``), the split, the feature tables, and the simulator's oracle
(``<smpd_dir>.oracle.parquet``: per post the latent signal, noise and one contribution per effect).
The pipeline is not rerun and nothing under the run is written; the only fitting is the small
per-effect reference models below (LightGBM on existing feature tables; ``--no-reference`` skips them).

Method (``models/oracle_breakdown.py``): in latent units, where the effects add up to the signal,
the prediction is mapped rank-preservingly onto the signal (normal scores, least-squares scale) and
the residual ``signal - prediction`` is regressed jointly on every effect's contribution (and the
noise). ``beta_e`` = 0: effect e is fully recovered; 1: fully missed. "missed" = ``beta_e^2 Var(c_e)``
as a share of the latent label's variance, next to the effect's own share ``Var(c_e)``;
"off-signal" = the residual part tied to no effect (estimation noise of partly recovered effects plus
error the model adds). ``SRC if fixed``: the SRC after adding the effect's missed part back.

For scale: a reference predictor (per effect, a LightGBM trained on the effect itself from that
effect's own feature columns; identity from the user's earlier visible labels) gives the beta the
current features allow, and "ceilings" replace effects in the oracle signal by what can be known of
them (identity from history, influence from metadata, hot from features / unknown). Also: the
breakdown by subgroup (the user's number of earlier visible labels; days after the last visible
label), per base learner, and how much of the off-signal error each feature group explains.

    python -m benchmarks.bench_oracle_breakdown [--root .] [--out benchmarks/results/oracle_breakdown.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import polars.selectors as cs

from benchmarks.machine import cpu_model
from featurestore.feature_groups import list_groups
from featurestore.paths import Paths
from models.evaluation import MODEL_TABLES
from models.metrics import spearman
from models.oracle_breakdown import (EFFECTS, earlier_visible_stats, effect_breakdown, explained_share,
                                     identity_from_history, residual_fit)

SPLITS = ("val", "test", "predict")  # train rows are fitted to their own labels: no holdout
HISTORY_BINS = ((0, 0), (1, 2), (3, 9), (10, None))
DAY_BINS = ((0, 30), (30, 60), (60, 120), (120, None))
LABELS = {"user_influence": "user influence (crawled stats, profile)", "user_identity": "user identity (labels only)",
          "category": "category", "image": "image quality", "text": "text", "time_of_day": "time of day",
          "trend": "trend", "geo": "geo", "hot": "hot (similar recent posts)", "media": "media"}
MIN_SHARE = 0.002  # effects with less within-split variance get no beta in the tables (it is not identified)


def load(paths: Paths, model: str) -> pl.DataFrame:
    """split x predictions x oracle, one row per post, with the user-history and time columns."""
    oracle = pl.read_parquet(paths.oracle)
    preds = pl.read_parquet(paths.table(MODEL_TABLES[model])).drop("label", "split")
    split = pl.read_parquet(paths.table("split"))
    j = split.join(preds, on="pid").join(oracle.drop("postdate", "split"), on="pid")
    if j.height != split.height:
        raise ValueError(f"{split.height} posts in the split, {j.height} after joining predictions and oracle")
    n_prev, prev_noise = earlier_visible_stats(j["uid"].to_numpy(), j["postdate"].to_numpy(),
                                               j["label_visible"].to_numpy(), j["noise"].to_numpy())
    last_visible = j.filter(pl.col("label_visible"))["postdate"].max()
    return j.with_columns(pl.Series("n_prev", n_prev), pl.Series("prev_noise", prev_noise),
                          ((pl.col("postdate") - last_visible) / 86400).alias("days_after_visible"))


def breakdown(part: pl.DataFrame, column: str = "pred") -> dict:
    return effect_breakdown(part[column].to_numpy(), {e: part[e].to_numpy() for e in EFFECTS},
                            part["label"].to_numpy(), part["noise"].to_numpy())


def in_bin(col: str, lo: float, hi: float | None) -> pl.Expr:
    """Counts (n_prev): lo..hi inclusive; days: [lo, hi); hi None: no upper end."""
    if hi is None:
        return pl.col(col) >= lo
    return (pl.col(col) >= lo) & ((pl.col(col) <= hi) if col == "n_prev" else (pl.col(col) < hi))


def bin_name(lo: float, hi: float | None, col: str) -> str:
    if col == "n_prev":
        return f"{lo}" if hi == lo else (f"{lo}-{hi}" if hi is not None else f">={lo}")
    return f"{lo}-{hi}" if hi is not None else f">={lo}"


def subgroups(frame: pl.DataFrame, col: str, bins: tuple, splits: tuple[str, ...]) -> list[dict]:
    rows = []
    for s in splits:
        part = frame.filter(pl.col("split") == s)
        for lo, hi in bins:
            sub = part.filter(in_bin(col, lo, hi))
            if sub.height < 60:
                continue
            r = breakdown(sub)
            rows.append({"split": s, "bin": bin_name(lo, hi, col), "n": sub.height, "post_share": sub.height / part.height,
                         "src_model": r["src"]["model"], "src_oracle": r["src"]["oracle"], "ratio": r["src"]["ratio"],
                         "eps_share": r["eps_share"],
                         "beta": {e: v["beta"] for e, v in r["effects"].items()},
                         "beta_se": {e: v["beta_se"] for e, v in r["effects"].items()},
                         "missed_share": {e: v["missed_share"] for e, v in r["effects"].items()}})
    return rows


def ceilings(frame: pl.DataFrame, split: str, refs: dict[str, np.ndarray] | None) -> dict:
    """SRC vs label of the oracle signal with, cumulatively, effects replaced by what can be known of them:
    identity by its posterior mean from the user's earlier visible labels; influence by its reference
    (metadata); hot by its reference (current features), then hot unknown. Every other effect exact:
    upper bounds for a model with this information."""
    part = frame.filter(pl.col("split") == split)
    mask = (frame["split"] == split).to_numpy()
    label, s = part["label"].to_numpy(), part["signal"].to_numpy()
    v_id, v_noise = float(frame["user_identity"].var()), float(frame["noise"].var())
    est = identity_from_history(part["user_identity"].to_numpy(), part["n_prev"].to_numpy(),
                                part["prev_noise"].to_numpy(), v_id, v_noise)
    step = s - part["user_identity"].to_numpy() + est
    out = {"cold_share": float((part["n_prev"] == 0).mean()), "src_model": spearman(label, part["pred"].to_numpy()),
           "src_oracle": spearman(label, s), "src_identity_from_history": spearman(label, step)}
    if refs is not None:
        step = step - part["user_influence"].to_numpy() + refs["user_influence"][mask]
        out["src_plus_influence_from_metadata"] = spearman(label, step)
        out["src_plus_hot_from_features"] = spearman(label, step - part["hot"].to_numpy() + refs["hot"][mask])
        out["src_plus_hot_unknown"] = spearman(label, step - part["hot"].to_numpy())
    return out


# Reference: what each effect's own feature columns can tell about it. Per effect, a LightGBM fitted
# to the effect's contribution itself (noise-free target) on the train rows, from the columns named here
# (feature-table stem -> column prefixes; () = all); identity: its posterior mean from the user's
# earlier visible labels; trend: exact (a known function of the date).
REFERENCE_SOURCES = {
    "user_influence": {"baseline": ("base_user_",), "user": (), "crawled": ()},
    "category": {"baseline": ("base_cat_",)},
    "image": {"image_stats": ()},
    "text": {"baseline": ("base_text_",), "text": ()},
    "time_of_day": {"baseline": ("base_time_",), "temporal": ("time_",)},
    "geo": {"baseline": ("base_geo_",), "temporal": ("geo_",)},
    "hot": {"sequence": (), "history": ("hist_category_", "hist_subcategory_", "hist_concept_"),
            "image_stats": ("img_dom_hue_",), "baseline": ("base_cat_", "base_time_days")},
    "media": {"baseline": ("base_text_is_video",)},
}
REFERENCE_LGBM = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
                  "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "random_state": 0, "n_jobs": 2,
                  "verbose": -1}


def reference_columns(frame: pl.DataFrame, paths: Paths, sources: dict[str, tuple[str, ...]]) -> np.ndarray:
    """(rows of frame, k) float matrix of the named feature columns (NaN where missing)."""
    out = frame.select("pid")
    for stem, prefixes in sources.items():
        path = paths.table(f"features_{stem}")
        table = pl.read_parquet(path)
        cols = [c for c in table.columns if c not in ("pid", "postdate") and (not prefixes or c.startswith(prefixes))]
        out = out.join(table.select("pid", *cols), on="pid", how="left")
    return out.drop("pid").select(pl.all().cast(pl.Float64)).to_numpy()


def reference_prediction(frame: pl.DataFrame, paths: Paths) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(n,) the reference predictor (sum of the per-effect references) and the per-effect references."""
    import lightgbm as lgb  # only this section needs it

    train = (frame["split"] == "train").to_numpy()
    refs: dict[str, np.ndarray] = {}
    for effect, sources in REFERENCE_SOURCES.items():
        x, y = reference_columns(frame, paths, sources), frame[effect].to_numpy()
        refs[effect] = lgb.LGBMRegressor(**REFERENCE_LGBM).fit(x[train], y[train]).predict(x)
    refs["user_identity"] = identity_from_history(frame["user_identity"].to_numpy(), frame["n_prev"].to_numpy(),
                                                  frame["prev_noise"].to_numpy(), float(frame["user_identity"].var()),
                                                  float(frame["noise"].var()))
    refs["trend"] = frame["trend"].to_numpy()
    return sum(refs.values()), refs


def reference_breakdown(frame: pl.DataFrame, ref: np.ndarray, model: dict[str, dict]) -> dict:
    """The reference predictor's breakdown per split, and what reaching its beta per effect would give the model."""
    frame = frame.with_columns(pl.Series("pred_reference", ref))
    out = {}
    for s in SPLITS:
        part = frame.filter(pl.col("split") == s)
        r = breakdown(part, "pred_reference")
        f = residual_fit(part["pred"].to_numpy(), {e: part[e].to_numpy() for e in EFFECTS}, part["noise"].to_numpy())
        label, gain, total = part["label"].to_numpy(), {}, f["s_hat"].copy()
        for j, e in enumerate(f["names"]):
            if e not in r["effects"]:
                continue
            ce = f["c"][:, j] - f["c"][:, j].mean()
            step = max(model[s]["effects"][e]["beta"] - r["effects"][e]["beta"], 0.0) * ce
            gain[e] = spearman(label, f["s_hat"] + step)
            total += step
        r["model_src_if_at_reference"] = gain
        r["model_src_if_all_at_reference"] = spearman(label, total)
        out[s] = r
    return out


def off_signal_by_group(frame: pl.DataFrame, paths: Paths, split: str) -> dict[str, float]:
    """Share of the off-signal error (eps) each feature group's columns explain linearly, beyond the effects."""
    part = frame.filter(pl.col("split") == split)
    f = residual_fit(part["pred"].to_numpy(), {e: part[e].to_numpy() for e in EFFECTS}, part["noise"].to_numpy())
    controls = np.column_stack([f["c"], part["noise"].to_numpy()])
    out = {}
    for g in list_groups():
        path = paths.table(g.table)
        if not path.is_file():
            continue
        table = part.select("pid").join(pl.read_parquet(path).drop("postdate", strict=False), on="pid", how="left")
        x = table.drop("pid").select((cs.numeric() | cs.boolean()).cast(pl.Float64)).to_numpy()
        out[g.name] = explained_share(f["eps"], x, controls)
    return out


IMAGE_TRUTH = (("img_brightness", "img_brightness"), ("img_colourfulness", "img_colourfulness"),
               ("img_blur", "img_sharpness"), ("img_thirds_dist", "img_thirds_distance"))


def image_measure_check(frame: pl.DataFrame, paths: Paths) -> dict[str, float]:
    """Spearman of each planted image parameter (oracle) with its measured counterpart (features_image_stats)."""
    path = paths.table("features_image_stats")
    if not path.is_file():
        return {}
    measured = pl.read_parquet(path).select("pid", *{m for _, m in IMAGE_TRUTH})
    j = frame.select("pid", *{t for t, _ in IMAGE_TRUTH}).join(measured, on="pid", suffix="_measured").drop_nulls()
    return {f"{t} ~ {m}": spearman(j[t].to_numpy(), j[m if m != t else f"{m}_measured"].to_numpy())
            for t, m in IMAGE_TRUTH}


def fmt(x: float, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _beta(v: dict | None) -> str:
    return "–" if v is None or v["share"] < MIN_SHARE else f"{v['beta']:.2f} ± {v['beta_se']:.2f}"


def render(res: dict) -> str:
    sp, ref = res["splits"], res.get("reference")
    lines = ["# Where the rest of the gap is: the stack's error by planted effect", "",
             f"Command: `{res['command']}`  ", f"Date: {res['date']}  ", f"CPU: {res['cpu']}  ",
             f"Run: `{res['root']}` (model `{res['model']}`; oracle `{res['oracle']}`; {res['seconds']} s)", "",
             ("Latent units: the effects add up to the signal; the label is a monotone map of signal + noise. "
             "**share** = Var(c_e) / Var(latent label). **beta** = coefficient of the residual (signal − the "
             "prediction mapped rank-preservingly onto the signal) on c_e, all effects in one least-squares fit: "
             "0 = recovered, 1 = missed (± standard error). **missed** = beta² Var(c_e) / Var(latent label). "
             "**off-signal** = residual variance tied to no effect: the estimation noise of partly recovered "
             "effects (e.g. a user mean from a few noisy labels) plus error the model adds. **SRC if fixed**: SRC "
             "vs label with the effect's missed part added back. **reference beta**: the same fit for a reference "
             "predictor, per effect a LightGBM trained on the effect itself (noise-free) from that effect's own "
             "feature columns on the train rows (identity: its posterior mean from the user's earlier visible "
             "labels; trend: exact), i.e. about what the current features could give; **SRC at reference**: the "
             f"model's SRC with its beta lowered to the reference's. beta is not shown where share < {MIN_SHARE}."), ""]
    for s in SPLITS:
        r = sp[s]
        lines += [(f"## {s} ({r['n']} posts): model SRC {r['src']['model']:.4f}, oracle {r['src']['oracle']:.4f}, "
                  f"ratio {r['src']['ratio']:.3f}"), "",
                  "| effect | share | beta | reference beta | missed | SRC if fixed | SRC at reference |",
                  "|---|---|---|---|---|---|---|"]
        for e in EFFECTS:
            v = r["effects"].get(e)
            rv = ref[s]["effects"].get(e) if ref else None
            shown = v is not None and v["share"] >= MIN_SHARE
            at_ref = ref[s]["model_src_if_at_reference"].get(e) if ref and shown else None
            lines.append(f"| {LABELS[e]} | {fmt(v['share'], 3) if v else '–'} | {_beta(v)} | {_beta(rv)} | "
                         f"{fmt(v['missed_share'], 3) if shown else '–'} | {fmt(v['src_if_fixed'], 4) if shown else '–'} "
                         f"| {fmt(at_ref, 4)} |")
        lines.append(f"| noise (unpredictable) | {r['noise_share']:.3f} | | | | | |")
        lines.append(f"| off-signal | {r['eps_share']:.3f} | | {fmt(ref[s]['eps_share'], 3) if ref else '–'} | | "
                     f"{r['src']['if_eps_removed']:.4f} | |")
        lines.append("")
    lines += ["## Summary", "", ("| split | n | model SRC | oracle SRC | model / oracle | reference SRC | reference / oracle "
              "| model SRC, all betas at reference | sum missed | off-signal | noise coef (leak check, ~0) |"),
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in SPLITS:
        r = sp[s]
        missed = sum(v["missed_share"] for v in r["effects"].values())
        rs = ref[s]["src"]["model"] if ref else float("nan")
        lines.append(f"| {s} | {r['n']} | {r['src']['model']:.4f} | {r['src']['oracle']:.4f} | {r['src']['ratio']:.3f} | "
                     f"{fmt(rs, 4)} | {fmt(rs / r['src']['oracle'], 3)} | "
                     f"{fmt(ref[s]['model_src_if_all_at_reference'], 4) if ref else '–'} | {missed:.3f} | "
                     f"{r['eps_share']:.3f} | {r['noise_coef']:.3f} ± {r['noise_coef_se']:.3f} |")
    lines += ["", "## Ceilings: the oracle with effects replaced by what can be known of them", "",
              ("Cumulatively: user identity by its posterior mean from the user's earlier visible labels (cold = none), "
              "user influence by its reference (metadata), hot by its reference (current features) or unknown. Every "
              "other effect exact, so each is an upper bound for a model with that information."), "",
              ("| split | cold posts | oracle | identity from history | + influence from metadata "
              "| + hot from features | + hot unknown instead | model | model / last |"),
              "|---|---|---|---|---|---|---|---|---|"]
    for s, c in res["ceilings"].items():
        o = c["src_oracle"]
        cell = lambda k, c=c, o=o: f"{c[k]:.4f} ({c[k] / o:.3f})" if k in c else "–"  # noqa: E731
        last = c.get("src_plus_hot_unknown", c["src_identity_from_history"])
        lines.append(f"| {s} | {c['cold_share']:.0%} | {o:.4f} | {cell('src_identity_from_history')} | "
                     f"{cell('src_plus_influence_from_metadata')} | {cell('src_plus_hot_from_features')} | "
                     f"{cell('src_plus_hot_unknown')} | {cell('src_model')} | {c['src_model'] / last:.3f} |")
    key = ("user_influence", "user_identity", "image", "time_of_day", "hot")
    for title, rows in (("By the user's number of earlier visible labels", res["by_user_history"]),
                        ("By days after the last visible label (val, test, predict pooled)", res["by_days"])):
        lines += ["", f"## {title}", "", "| split | bin | n | posts | model SRC | oracle SRC | ratio | off-signal | "
                  + " | ".join(f"beta {e}" for e in key) + " |", "|---|---|---|---|---|---|---|---|" + "---|" * len(key)]
        for r in rows:
            betas = " | ".join(f"{r['beta'][e]:.2f} ± {r['beta_se'][e]:.2f}" if e in r["beta"] else "–" for e in key)
            lines.append(f"| {r['split']} | {r['bin']} | {r['n']} | {r['post_share']:.0%} | {r['src_model']:.3f} | "
                         f"{r['src_oracle']:.3f} | {r['ratio']:.3f} | {r['eps_share']:.3f} | {betas} |")
    lines += ["", "## Per base learner (test)", "", "| learner | test SRC | ratio | off-signal | "
              + " | ".join(f"beta {e}" for e in key) + " |", "|---|---|---|---|" + "---|" * len(key)]
    for name, r in res["learners"].items():
        lines.append(f"| {name} | {r['src']['model']:.4f} | {r['src']['ratio']:.3f} | {r['eps_share']:.3f} | "
                     + " | ".join(fmt(r["effects"][e]["beta"]) for e in key) + " |")
    lines += ["", "## Where the off-signal error lives", "",
              ("Share of the model's off-signal error that a feature group's columns explain linearly beyond the "
              "effects (nulls as mean + indicator)."), "",
              "| feature group | " + " | ".join(res["off_signal_by_group"]) + " |",
              "|---|" + "---|" * len(res["off_signal_by_group"])]
    groups = sorted({g for v in res["off_signal_by_group"].values() for g in v})
    for g in groups:
        lines.append(f"| {g} | " + " | ".join(fmt(v.get(g, float("nan")), 3) for v in res["off_signal_by_group"].values())
                     + " |")
    if res.get("image_measures"):
        lines += ["", "## Image parameters: planted (oracle) vs measured (features_image_stats)", "",
                  "| planted ~ measured | Spearman |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in res["image_measures"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--smpd-dir", type=Path, default=None)
    ap.add_argument("--model", choices=sorted(MODEL_TABLES), default="stack")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/oracle_breakdown.md"))
    ap.add_argument("--json", type=Path, default=None, help="default: --out with .json")
    ap.add_argument("--no-reference", action="store_true", help="skip the per-effect reference fits (LightGBM, ~2 min)")
    args = ap.parse_args(argv)
    paths = Paths(root=args.root, smpd=args.smpd_dir)
    if not paths.oracle.is_file():
        raise SystemExit(f"no oracle at {paths.oracle}: this benchmark needs the simulated set")
    t0 = time.perf_counter()
    frame = load(paths, args.model)
    res: dict = {"command": "python -m benchmarks.bench_oracle_breakdown " + " ".join(argv if argv is not None
                                                                                       else sys.argv[1:]),
                 "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu": cpu_model(), "root": str(args.root),
                 "model": args.model, "oracle": str(paths.oracle), "min_share": MIN_SHARE}
    res["splits"] = {s: breakdown(frame.filter(pl.col("split") == s)) for s in SPLITS}
    res["by_user_history"] = subgroups(frame, "n_prev", HISTORY_BINS, SPLITS)
    pooled = frame.filter(pl.col("split").is_in(SPLITS)).with_columns(pl.lit("pooled").alias("split"))
    res["by_days"] = subgroups(pooled, "days_after_visible", DAY_BINS, ("pooled",))
    test = frame.filter(pl.col("split") == "test")
    res["learners"] = {("stack" if c == "pred" else c.removeprefix("pred_")): breakdown(test, c)
                       for c in frame.columns if c == "pred" or c.startswith("pred_")}
    res["off_signal_by_group"] = {s: off_signal_by_group(frame, paths, s) for s in ("test", "predict")}
    refs = None
    if not args.no_reference:
        ref, refs = reference_prediction(frame, paths)
        res["reference"] = reference_breakdown(frame, ref, res["splits"])
    res["ceilings"] = {s: ceilings(frame, s, refs) for s in SPLITS}
    res["image_measures"] = image_measure_check(frame, paths)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    md = render(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    out_json = args.json or args.out.with_suffix(".json")
    out_json.write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(md)


if __name__ == "__main__":
    main()
