"""Text of a report: plain-text tables for the terminal, report.md with skips, settings, versions."""
from __future__ import annotations

import json

from speechvae_jax.evaluate import generation
from speechvae_jax.evaluate.probes import HEADS

RECON_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "mel_distance", "mrstft_distance",
                 "speaker_sim", "f0_rmse_cents", "f0_bias_cents", "f0_corr", "vde", "dnsmos_ovrl", "dnsmos_sig",
                 "dnsmos_bak", "dnsmos_p808", "wer", "cer", "dc_offset", "frame_comb_db")


def _fmt(value, std=None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if std is None else f"{value:.3f} ± {std:.3f}"


def _feature_sets(report: dict) -> list[str]:
    return list(report["settings"]["eval_config"]["understanding"]["feature_sets"])


def tables(report: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the summary tables."""
    out = []
    recon = report.get("reconstruction", {})
    rec = recon.get("summary")
    if rec:
        rows = [[m, _fmt(rec["recon"].get(m)), _fmt(rec["ground_truth"].get(m))]
                for m in RECON_METRICS if m in rec["recon"] or m in rec["ground_truth"]]
        (name, info), = recon["datasets"].items()
        out.append((f"Reconstruction ({len(recon['ids'])} utterances of {name}, step {report['run']['step']})",
                    ["metric", "resynthesis", "ground truth"], rows))
    und = report.get("understanding")
    if und:
        fsets, rows = _feature_sets(report), []
        for task, by_fs in und.items():
            used = {h for res in by_fs.values() for h in res.get("heads", {})}
            for head in [h for h in HEADS if h in used] or ["-"]:
                row = [task, next(iter(by_fs.values()))["metric"], head]
                for fs in fsets:
                    h = by_fs.get(fs, {}).get("heads", {}).get(head)
                    row.append(_fmt(h["value_mean"], h["value_std"]) if h else "skipped" if fs in by_fs else "-")
                rows.append(row)
        seeds = report["settings"]["eval_config"]["understanding"]["seeds"]
        out.append((f"Understanding (mean ± std over seeds {list(seeds)})", ["task", "metric", "head", *fsets], rows))
    gen = report.get("generation")
    if gen:
        summary, info = gen["summary"], gen["tts"]
        rows = [[m, *(_fmt(summary[r].get(m)) for r in reversed(generation.ROWS))] for m in generation.METRICS]
        out.append((f"Generation ({len(gen['pairs'])} test sentences, TTS step {info['step']}, text "
                    f"{info['text']['mode']}/{info['text']['units']}, NFE {info['sample']['nfe']}, "
                    f"CFG {info['sample']['cfg_scale']})", ["metric", "tts", "resynthesis", "ground truth"], rows))
    return out


def format_summary(report: dict) -> str:
    """Plain-text tables of the report (printed at the end of `speechvae evaluate`)."""
    lines = []
    for title, header, rows in tables(report):
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
        lines += [title, "  ".join(h.ljust(w) for h, w in zip(header, widths)),
                  "  ".join("-" * w for w in widths)]
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
        lines.append("")
    lines += [f"skipped {t}/{fs} [{code}]: {why}" for t, fs, code, why in skipped_parts(report)]
    return "\n".join(lines + training_skips(report))


def skipped_parts(report: dict) -> list[tuple[str, str, str, str]]:
    """(task, feature set, skip code, reason) of every probe that did not run."""
    return [(t, fs, r.get("skip", "?"), r["skipped"]) for t, by in report.get("understanding", {}).items()
            for fs, r in by.items() if "skipped" in r]


def _layer_weights(report: dict) -> list[str]:
    lines = []
    for task, by_fs in report.get("understanding", {}).items():
        for head, h in by_fs.get("teacher_layers", {}).get("heads", {}).items():
            weights = ", ".join(f"{w:.2f}" for w in h["layer_weights_mean"])
            lines.append(f"- {task} ({head}): [{weights}]")
    return (["Learned teacher layer weights (softmax, mean over seeds; index 0 = input of the first "
             "transformer layer):", "", *lines, ""] if lines else [])


def training_skips(report: dict) -> list[str]:
    """One line per probe whose training left utterances out (CTC: label longer than the frames, or
    longer than `max_train_frames`); counts as in every seed's run."""
    lines = []
    for task, by_fs in report.get("understanding", {}).items():
        for fs, res in by_fs.items():
            for head, h in res.get("heads", {}).items():
                unfit, long = (int(h["mean"].get(k, 0)) for k in ("skipped_train", "skipped_train_too_long"))
                if unfit or long:
                    total = unfit + long + int(h["mean"]["num_train"])
                    lines.append(f"- {task}/{fs} ({head}): {unfit} with a label longer than their frames, "
                                 f"{long} longer than max_train_frames, of {total}")
    return (["Training utterances the probes left out:", "", *lines, ""] if lines else [])


def format_markdown(report: dict) -> str:
    """report.md: the tables, errors and skips, layer weights, settings, versions and plots."""
    run = report["run"]
    out = [f"# Evaluation of `{run['workdir']}`", "",
           f"Checkpoint step {run['step']} (EMA params hash `{run['checkpoint_hash']}`), "
           f"data `{run['data']}`.", ""]
    for title, header, rows in tables(report):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    rec = report.get("reconstruction", {}).get("summary")
    if rec and rec["errors"]:
        out += ["Scorer failures (utterances skipped for that scorer): "
                + ", ".join(f"{k}: {v}" for k, v in sorted(rec["errors"].items())), ""]
    skipped = skipped_parts(report)
    if skipped:
        out += ["Skipped probes:", ""] + [f"- {t}/{fs} [{code}]: {why}" for t, fs, code, why in skipped] + [""]
    out += training_skips(report)
    out += _layer_weights(report)
    out += ["## Settings", "", "```json", json.dumps(report["settings"], indent=1, sort_keys=True), "```", "",
            "## Versions", "", ", ".join(f"{k} {v}" for k, v in sorted(report["versions"].items())), ""]
    out += [f"![{p}]({p})" for p in report.get("plots", [])]
    return "\n".join(out) + "\n"
