"""The headline of RESULTS.md and the Recall@10-vs-fit-time plot, from the raw numbers the
benchmark scripts saved (``bench/out/quality.json``, ``speed.json``, ``scale.json``).

    python -m bench.summary                # rewrites the "headline" section + the plot

Run it after ``bench.quality`` / ``bench.speed`` / ``bench.scale``; it trains nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, EPOCH_MODELS, markdown_table, read_json, write_section
from bench.quality import RESULTS_PATH, json_path

TARGETS = {"P1": 0.25, "P2": 0.13}
REFERENCES = ("textbook-bpr", "implicit-als", "implicit-bpr")
PLOT_PATH = BENCH_DIR / "recall_vs_fit_time.html"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__.split("\n")[0])
    p.add_argument("--results", default=str(RESULTS_PATH))
    p.add_argument("--plot", default=str(PLOT_PATH), help="'' for no plot")
    args = p.parse_args(argv)
    quality = read_json(json_path(args.results, "quality"), None)
    speed = read_json(json_path(args.results, "speed"), None)
    scale = read_json(json_path(args.results, "scale"), None)
    body = headline(quality, speed, scale)
    print(body)
    write_section(Path(args.results), "headline", body, new_at="top")
    if args.plot and quality:
        print(plot(quality["rows"], Path(args.plot)))
    return 0


def headline(quality: dict | None, speed: dict | None, scale: dict | None) -> str:
    lines = ["## Headline (`bench/summary.py`, from the sections below)", ""]
    if quality:
        lines += quality_lines(quality["rows"])
    else:
        lines += ["- quality: MISSING (bench.quality has not written bench/out/quality.json)", ""]
    lines += speed_lines(speed) if speed else ["- speed: MISSING (no bench/out/speed.json)", ""]
    lines += scale_lines(scale) if scale else ["- scale: MISSING (no bench/out/scale.json)", ""]
    return "\n".join(lines).rstrip() + "\n"


def _best(rows: list[dict], models) -> dict | None:
    chosen = [r for r in rows if r["model"] in models]
    return max(chosen, key=lambda r: r["recall@10"]) if chosen else None


def quality_lines(rows: list[dict]) -> list[str]:
    out: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    for protocol in dict.fromkeys(r["protocol"] for r in rows):
        mine = [r for r in rows if r["protocol"] == protocol]
        best = _best(mine, EPOCH_MODELS)
        if best is None:
            continue
        name = f"{best['model']} ({best['variant']})"
        target = TARGETS.get(protocol)
        if target is not None:
            gap = best["recall@10"] - target
            targets.append({"protocol": protocol, "best embedding model": name,
                            "test R@10": best["recall@10"], "target": f">= {target:g}",
                            "met": "yes" if gap >= 0 else f"no, short by {-gap:.4f}"})
        for ref in (*REFERENCES, "ease"):
            variants = {r["variant"]: r for r in mine if r["model"] == ref}
            if not variants:
                continue
            top = max(variants.values(), key=lambda r: r["recall@10"])
            out.append({
                "protocol": protocol, "best embedding model": name,
                "its R@10": best["recall@10"], "reference": ref,
                "ref R@10 as shipped": (variants.get("reference") or variants.get("default")
                                        or {}).get("recall@10"),
                "ref R@10 tuned on valid": variants.get("tuned", {}).get("recall@10"),
                "embedding - best ref": best["recall@10"] - top["recall@10"],
                "fit s (embedding / ref best)": f"{best['fit s']:.1f} / {top['fit s']:.1f}",
            })
    cols = ("protocol", "best embedding model", "its R@10", "reference", "ref R@10 as shipped",
            "ref R@10 tuned on valid", "embedding - best ref", "fit s (embedding / ref best)")
    return [
        "### Quality: best embedding model vs each reference (test Recall@10, one seed)", "",
        markdown_table(out, cols), "",
        "EASE (not a reference, the strongest baseline of the core) is listed for scale. "
        "`as shipped` = library defaults / tutorial settings (EASE: its default lambda); "
        "`tuned on valid` = best of the grid by validation Recall@10, refitted on "
        "train + validation.", "",
        "### Recall@10 targets", "",
        markdown_table(targets, ("protocol", "best embedding model", "test R@10", "target",
                                 "met")), "",
    ]


def speed_lines(speed: dict) -> list[str]:
    fit = {r["variant"]: r for r in speed["fit"]}
    default, loop, textbook = (fit.get(k) for k in ("recsys default", "recsys loop only",
                                                     "textbook"))
    implicit = fit.get("implicit BPR")
    c = speed.get("config", {})
    lines = ["### Speed (P2, mf-bpr, medians of interleaved runs)", ""]
    tb = textbook["median fit s"] if textbook else None
    if default and tb:
        d = default["median fit s"]
        lines.append(
            f"- default config (lr {c.get('lr')}, wd {c.get('weight_decay')}, batch "
            f"{c.get('batch_size')}, {c.get('threads')} thread, up to {c.get('epochs')} epochs "
            f"with validation + early stop + refit): {d:.2f} s vs textbook {tb:.2f} s = "
            f"**{tb / d:.1f}x faster** (test R@10 {default['test recall@10']:.4f} vs "
            f"{textbook['test recall@10']:.4f})")
    if loop and tb:
        lo = loop["median fit s"]
        lines.append(
            f"- loop only (same positives and epochs as the textbook, no validation): "
            f"{lo:.2f} s = **{tb / lo:.1f}x faster** than the textbook")
    if implicit:
        im = implicit["median fit s"]
        for label, row in (("default config", default), ("loop only", loop)):
            if row:
                r = row["median fit s"]
                lines.append(
                    f"- vs implicit BPR ({implicit['what runs']}: {im:.2f} s): {label} takes "
                    f"{r / im:.1f}x its time (implicit / this = {im / r:.2f})")
    else:
        lines.append("- implicit BPR fit time: not measured (implicit was not importable)")
    if not any(r["operation"].startswith("recommend") for r in speed.get("latency", [])):
        lines.append("- serving latency rows: MISSING (the serving modules did not import; see "
                     "the note at the end of the speed section)")
    return [*lines, ""]


def scale_lines(scale: dict) -> list[str]:
    rows = {r["stage"].split(",")[0]: r for r in scale["rows"]}
    fit = next((r for r in scale["rows"] if r["stage"].startswith("mf-bpr fit")), None)
    shape = scale["shape"]
    text = (f"- synthetic ML-25M shape x {scale['fraction']:g} ({shape['users']:,} users x "
            f"{shape['items']:,} items), status {scale['status']}, peak RSS "
            f"{scale['peak_rss_gb']:.2f} GB")
    if fit:
        text += f"; one mf-bpr epoch at batch {scale['batch_size']:,}: {fit['seconds']:.0f} s"
    top = next((r for r in scale["rows"] if r["stage"].startswith("top_k_items")), None)
    if top:
        text += f"; ranking: {top['result']}"
    lines = ["### Scale", "", text]
    for name in ("EASE fit", "itemknn fit"):
        if name in rows:
            lines.append(f"- {name}: {rows[name]['result']}")
    return [*lines, ""]


def plot(rows: list[dict], path: Path) -> str:
    """Recall@10 vs fit seconds (log) for every row, one panel per protocol."""
    import plotly.express as px

    data = [{**r, "label": f"{r['model']} ({r['variant']})",
             "kind": ("reference" if r["model"] in REFERENCES else
                      "embedding" if r["model"] in EPOCH_MODELS else "baseline")}
            for r in rows if r["fit s"] and r["fit s"] > 0]
    fig = px.scatter(
        data, x="fit s", y="recall@10", color="model", symbol="variant", facet_col="protocol",
        log_x=True, hover_name="label", hover_data={"settings": True, "ndcg@10": ":.4f"},
        title="MovieLens 100K: test Recall@10 vs fit time (one run each, 1 thread)",
        labels={"fit s": "fit seconds (log)", "recall@10": "test Recall@10"},
    )
    fig.update_traces(marker={"size": 11})
    fig.update_yaxes(matches=None, showticklabels=True)
    for protocol, target in TARGETS.items():
        col = [a.text.split("=")[-1] for a in fig.layout.annotations].index(protocol) + 1 \
            if any(a.text.endswith(protocol) for a in fig.layout.annotations) else None
        if col:
            fig.add_hline(y=target, line_dash="dot", line_color="grey", row=1, col=col,
                          annotation_text=f"target {target:g}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="cdn")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return f"wrote {path} (no PNG: kaleido is not installed)"
    fig.write_image(path.with_suffix(".png"))
    return f"wrote {path} and {path.with_suffix('.png')}"


if __name__ == "__main__":
    sys.exit(main())
