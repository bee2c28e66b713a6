"""The rows of the quality table: one figure, its target and PASS/FAIL per check."""
from __future__ import annotations

import numpy as np

from quality_subjects import CFEE_STARTS

PRESET_EDITS = ("happy", "surprise", "sad", "anger")   # colour, sharpness, identity
RAMP_TARGETS = ("happy", "surprise")
BROW_AUS = ("AU01", "AU02", "AU04")
MOUTH_AUS = ("AU12", "AU25", "AU26", "AU15")


# Targets of the table.
HAPPY_MIN_RATIO, HAPPY_SHARE = 1.06, 0.90
SURPRISE_GAP, SURPRISE_BROW = 0.10, 0.03
NEUTRAL_MAX_RATIO = 0.96
BROW_DROP = 0.02
# Real sad faces (cfee training people, sad photo against the same person's neutral one; 42
# people) draw the inner brows together (21-22 gap: median -0.067 eye dist., 88 % <= -0.02)
# and tilt them up at the inner ends (median +0.037), but do not lower them against the eyes
# (median -0.005): that is anger's V (-0.093). So sad's brows are checked for what is seen.
SAD_BROW_CLOSER = 0.02
SAD_SLANT = 0.0
CORNER_DROP = 0.01            # "the lip corners drop": at least 0.01 eye distance (our choice)
BAD_COLOUR = 0.0005           # share of the face box
NEARBY = 0.2                  # eye distances: the "colour found nearby in the input" variant (info)
GIF_COLOUR = 0.0001          # the figure for GIF quantisation alone
SHARPNESS = 0.85
IDENTITY_MEDIAN, IDENTITY_MAX = 0.35, 0.6
ZERO_EDIT = 2.0
SMOOTHNESS = 3.0
STILL = 1.0
VIDEO_WIDEN = 1.04
SPEED_MS = 13.5
# Expressions that read as what was asked: recognition targets.
SURPRISE_READ, SURPRISE_OF_RECALL = 0.70, 0.9
HAPPY_READ = 0.80
SURPRISE_STARTS = ("smiling", "angry", "neutral")
HAPPY_STARTS = ("sad", "angry", "disgusted", "surprised", "neutral")
ORDER = tuple(CFEE_STARTS.values()) + ("utkface", "examples")
READ_AS = {"surprise": "surprise", "happy": "happiness", "neutral": "neutral", "sad": "sadness",
           "anger": "anger", "disgust": "disgust", "fear": "fear"}
INNER_RATIO = 0.5
OLD_SMILE_AU12, OLD_SMILE_RATIO = 3.0, 0.95
SKULL = 2.0                  # grey levels above the codec's own
DARK_PAINT = 0.0005          # share of the face box
TALK_WIDEN = 1.08
BLINK_RATIO = 0.40           # eye aspect ratio falls by 60 % or more
BLACK_LIPS = 0.08            # near-black share of the lips' hull after happy (info)


def row(check: str, figure: str, target: str, passed, **values) -> dict:
    return {"check": check, "figure": figure, "target": target,
            "result": "n/a" if passed is None else ("PASS" if passed else "FAIL"), **values}


def edits_of(records, target: str, where=lambda r: True) -> list[dict]:
    return [r["edits"][target] for r in records if target in r["edits"] and where(r)]


def own_au12(r) -> float:
    return r["own"]["AU12"]


def check_happy(records) -> list[dict]:
    e = edits_of(records, "happy", lambda r: own_au12(r) < 1)
    if not e:
        return [row("happy (own AU12 < 1): mouth corners 48-54", "no face with AU12 < 1",
                    ">= +6 % in >= 90 %", None)]
    ratios = np.array([x["mouth_ratio"] for x in e])
    share = float((ratios >= HAPPY_MIN_RATIO).mean())
    return [row("happy (own AU12 < 1): mouth corners 48-54",
                f"{share:.0%} of {len(e)} faces >= +6 % (median {np.median(ratios) - 1:+.1%})",
                ">= +6 % in >= 90 %", share >= HAPPY_SHARE, n=len(e), share=share,
                median_ratio=float(np.median(ratios)))]


def check_surprise(records) -> list[dict]:
    e = edits_of(records, "surprise")
    gap = np.median([x["lip_gap_change"] for x in e])
    brow = np.median([x["brow_raise"] for x in e])
    return [row("surprise: inner-lip gap 62-66", f"{gap:+.3f} eye dist. (median of {len(e)})",
                ">= +0.10", gap >= SURPRISE_GAP, n=len(e), median=float(gap)),
            row("surprise: brow-to-eye height", f"{brow:+.3f} eye dist. (median)",
                ">= +0.03", brow >= SURPRISE_BROW, n=len(e), median=float(brow))]


def check_neutral(records) -> list[dict]:
    e = edits_of(records, "neutral", lambda r: own_au12(r) > 3)
    if not e:
        return [row("neutral (own AU12 > 3): mouth corners 48-54", "no face with AU12 > 3", "<= -4 %", None)]
    ratios = np.array([x["mouth_ratio"] for x in e])
    med, share = float(np.median(ratios)), float((ratios <= NEUTRAL_MAX_RATIO).mean())
    return [row("neutral (own AU12 > 3): mouth corners 48-54",
                f"{med - 1:+.1%} median; {share:.0%} of {len(e)} faces <= -4 %", "<= -4 %",
                med <= NEUTRAL_MAX_RATIO, n=len(e), median_ratio=med, share=share)]


def check_brows_down(records) -> list[dict]:
    e = edits_of(records, "anger")
    v = np.array([x["inner_brow_drop"] for x in e])
    rows = [row("anger: inner brows 21-22 lower", f"{np.median(v):+.3f} eye dist. (median of {len(e)}); "
                f"{(v >= BROW_DROP).mean():.0%} >= 0.02", ">= +0.02", np.median(v) >= BROW_DROP,
                n=len(e), median=float(np.median(v)), share=float((v >= BROW_DROP).mean()))]
    e = edits_of(records, "sad")
    closer = np.array([x["inner_brow_closer"] for x in e])
    slant = np.array([x["brow_slant_change"] for x in e])
    drop = np.array([x["inner_brow_drop"] for x in e])
    rows.append(row("sad brows: inner ends 21-22 drawn together, not pulled into anger's V",
                    f"together {np.median(closer):+.3f} eye dist. (median of {len(e)}; "
                    f"{(closer >= SAD_BROW_CLOSER).mean():.0%} >= 0.02); inner-over-outer slant "
                    f"{np.median(slant):+.3f}; (info) inner brows lower {np.median(drop):+.3f}",
                    f">= +{SAD_BROW_CLOSER:g} together, slant >= {SAD_SLANT:g} (real sad: +0.067, +0.037)",
                    np.median(closer) >= SAD_BROW_CLOSER and np.median(slant) >= SAD_SLANT,
                    n=len(e), median=float(np.median(closer)), slant=float(np.median(slant)),
                    drop=float(np.median(drop)), share=float((closer >= SAD_BROW_CLOSER).mean())))
    v = np.array([x["corner_drop"] for x in e])
    rows.append(row("sad: lip corners drop vs lip centre", f"{np.median(v):+.3f} eye dist. (median)",
                    f">= +{CORNER_DROP:g}", np.median(v) >= CORNER_DROP, median=float(np.median(v)),
                    share=float((v >= CORNER_DROP).mean())))
    return rows


def pct(x: float) -> str:
    return f"{100 * x:.3f} %"


def check_colour(records) -> list[dict]:
    rows = []
    for target in PRESET_EDITS:
        v = np.array([x["bad_colour"] for x in edits_of(records, target)])
        rows.append(row(f"colour, {target}: bad pixels in the face box",
                        f"max {pct(v.max())}, median {pct(np.median(v))}", "<= 0.05 % per face",
                        v.max() <= BAD_COLOUR, max=float(v.max()), median=float(np.median(v)),
                        over=int((v > BAD_COLOUR).sum())))
    v = preset_values(records, "bad_colour_nearby")
    rows.append(row(f"colour, info: as above, but any input colour within {NEARBY:g} eye dist. allowed",
                    f"max {pct(v.max())}, median {pct(np.median(v))} (all four targets)", "(info)", None,
                    max=float(v.max()), median=float(np.median(v)), over=int((v > BAD_COLOUR).sum())))
    v = np.array([r["gif_bad_colour"] for r in records])
    rows.append(row("colour, reference: GIF quantisation of the input", f"max {pct(v.max())}, "
                    f"median {pct(np.median(v))}, {(v > GIF_COLOUR).mean():.0%} of faces > 0.01 %",
                    "(reference; issue: <= 0.01 %)", None,
                    max=float(v.max()), median=float(np.median(v))))
    return rows


def preset_values(records, key: str) -> np.ndarray:
    return np.array([x[key] for t in PRESET_EDITS for x in edits_of(records, t)])


def check_sharpness(records) -> list[dict]:
    v = preset_values(records, "sharpness")
    return [row("sharpness: Laplacian variance out / in", f"{np.median(v):.2f} median "
                f"(5th pct {np.percentile(v, 5):.2f}, {len(v)} edits)", ">= 0.85",
                np.median(v) >= SHARPNESS, median=float(np.median(v)), p5=float(np.percentile(v, 5)))]


def check_identity(records) -> list[dict]:
    v = preset_values(records, "identity")
    return [row("identity: dlib descriptor distance", f"median {np.median(v):.3f}, max {v.max():.3f}, "
                f"{(v < IDENTITY_MAX).mean():.1%} < 0.6", "median <= 0.35, max < 0.6",
                np.median(v) <= IDENTITY_MEDIAN and v.max() < IDENTITY_MAX,
                median=float(np.median(v)), max=float(v.max()))]


def check_zero(records) -> list[dict]:
    v = np.array([r["zero_edit"] for r in records])
    return [row("zero edit (own AUs): change in the face box",
                f"max {v.max():.2f}, median {np.median(v):.2f} grey levels", "<= 2 per face",
                v.max() <= ZERO_EDIT,
                max=float(v.max()), median=float(np.median(v)))]


def check_smoothness(records) -> list[dict]:
    rows = []
    for target in RAMP_TARGETS:
        v = np.array([r["ramps"][target]["ratio"] for r in records if "ramps" in r])
        if not len(v):
            continue
        rows.append(row(f"smoothness, 30-frame ramp to {target}: largest / median step",
                        f"max {v.max():.2f}, median {np.median(v):.2f} ({len(v)} faces)", "<= 3",
                        v.max() <= SMOOTHNESS, max=float(v.max()), median=float(np.median(v))))
    return rows


def check_grid(records) -> list[dict]:
    rows = []
    for names, still, own, label in ((BROW_AUS, "mouth", "brows", "brow AUs leave the mouth still"),
                                     (MOUTH_AUS, "brows", "mouth", "mouth AUs leave the brows still")):
        per_au = {n: {"still": float(np.median([r["grid"][n][still] for r in records])),
                      "own": float(np.median([r["grid"][n][own] for r in records]))} for n in names}
        worst = max(per_au, key=lambda n: per_au[n]["still"])
        figure = ", ".join(f"{n} {v['still']:.2f} ({own} {v['own']:.2f})" for n, v in per_au.items())
        rows.append(row(f"grid, AU at 5 vs own AUs: {label}", f"median change {figure}",
                        f"< 1 grey level in the {still}", per_au[worst]["still"] < STILL, per_au=per_au))
    return rows


def check_video(video: dict | None) -> list[dict]:
    if video is None:
        return []
    r = video["mouth_ratio"]
    return [row("video: AU12 ramp 0 -> 5 (CSV track), mouth width last / first",
                f"{r - 1:+.1%} ({video['photo']}, {video['frames']} frames)", ">= +4 %",
                r >= VIDEO_WIDEN, **video)]


def check_speed(speed: dict) -> list[dict]:
    ms = speed["ms_per_face"]
    return [row("speed: generator per face (batch of 16)",
                f"{ms:.1f} ms ({speed['threads']} thread(s), load average {speed['load_average']:.1f})",
                "<= 13.5 ms (this CPU)", ms <= SPEED_MS, **speed)]


def check_redetection(records) -> list[dict]:
    e = [x for r in records for x in r["edits"].values()]
    lost = sum(not x["redetected"] for x in e)
    return [row("re-detection failures (landmarks fitted in the input box)", f"{lost} of {len(e)} edits",
                "(info)", None, failed=lost, edits=len(e))]


def build_table(records, video, speed) -> list[dict]:
    return (check_happy(records) + check_surprise(records) + check_neutral(records)
            + check_brows_down(records) + check_colour(records) + check_sharpness(records)
            + check_identity(records) + check_zero(records) + check_smoothness(records)
            + check_grid(records) + check_video(video) + check_speed(speed))


def markdown(rows) -> str:
    lines = ["| check | measured | target | result |", "|---|---|---|---|"]
    lines += [f"| {r['check']} | {r['figure']} | {r['target']} | {r['result']} |" for r in rows]
    return "\n".join(lines)


def example_lines(records) -> list[str]:
    """A short line per example photo face (they are also inside the table)."""
    out = []
    for r in records:
        if r["set"] != "examples":
            continue
        e = r["edits"]
        out.append(f"- {r['name']}: happy mouth {e['happy']['mouth_ratio'] - 1:+.1%}, surprise lip gap "
                   f"{e['surprise']['lip_gap_change']:+.3f}, brows {e['surprise']['brow_raise']:+.3f}, "
                   "bad colour max " + pct(max(e[t]['bad_colour'] for t in PRESET_EDITS)))
    return out


# ------------------------------------------------ expressions that read as asked

def read_rates(records, target: str) -> dict:
    """{start: (share of ``target`` edits the recogniser reads as it, n)}."""
    out = {}
    for start in ORDER:
        e = edits_of(records, target, lambda r: r["start"] == start)
        if e:
            out[start] = (float(np.mean([x["read"] == READ_AS[target] for x in e])), len(e))
    return out


def rates_text(rates: dict) -> str:
    return ", ".join(f"{s} {v:.0%} ({n})" for s, (v, n) in rates.items())


def check_recognised(records, surprise_recall: float | None) -> list[dict]:
    rows = []
    rates = read_rates(records, "surprise")
    need = max(SURPRISE_READ, SURPRISE_OF_RECALL * (surprise_recall or 0))
    ok = [rates[s][0] >= need for s in SURPRISE_STARTS if s in rates]
    rows.append(row("surprise recognised as surprise, by start", rates_text(rates),
                    f">= {need:.0%} from {', '.join(SURPRISE_STARTS)} (70 %, and 0.9 x the recogniser's "
                    f"recall on real surprise, {surprise_recall or 0:.0%})",
                    all(ok) if ok else None, rates=rates, need=need))
    rates = read_rates(records, "happy")
    ok = [rates[s][0] >= HAPPY_READ for s in HAPPY_STARTS if s in rates]
    rows.append(row("happy recognised as happiness, by start", rates_text(rates),
                    f">= 80 % from {', '.join(HAPPY_STARTS)}", all(ok) if ok else None, rates=rates))
    for target in ("neutral", "sad", "anger", "disgust", "fear"):
        rates = read_rates(records, target)
        rows.append(row(f"{target} recognised as {READ_AS[target]}, by start", rates_text(rates),
                        "(reported; above today's)", None, rates=rates))
    return rows


def check_surprise_mouth(records) -> list[dict]:
    e = edits_of(records, "surprise")
    ratio = np.array([x["inner_ratio"] for x in e])
    width = np.array([x["mouth_ratio"] for x in e])
    smiling = np.array([x["mouth_ratio"] for x in edits_of(records, "surprise", lambda r: r["start"] == "smiling")])
    extra = f"; from smiling starts {np.median(smiling) - 1:+.1%}" if len(smiling) else ""
    return [row("surprise mouth: inner-lip height / width (62-66 over 60-64)",
                f"median {np.median(ratio):.2f}, {(ratio >= INNER_RATIO).mean():.0%} of {len(e)} >= 0.5",
                ">= 0.5", float(np.median(ratio)) >= INNER_RATIO,
                median=float(np.median(ratio)), share=float((ratio >= INNER_RATIO).mean())),
            row("surprise mouth: corners 48-54 against the start",
                f"median {np.median(width) - 1:+.1%}, {(width <= 1).mean():.0%} not wider{extra}",
                "not wider (<= +0 %)", float(np.median(width)) <= 1.0,
                median=float(np.median(width)), share=float((width <= 1).mean()))]


def check_old_smile(records) -> list[dict]:
    rows = []
    for target in ("surprise", "neutral"):
        e = edits_of(records, target, lambda r: r["au12"] > OLD_SMILE_AU12)
        if not e:
            rows.append(row(f"old smile removed, {target} (start AU12 > 3)", "no such face", "<= -5 %", None))
            continue
        v = np.array([x["mouth_ratio"] for x in e])
        rows.append(row(f"old smile removed, {target} (start AU12 > 3): mouth corners 48-54",
                        f"median {np.median(v) - 1:+.1%}, {(v <= OLD_SMILE_RATIO).mean():.0%} of {len(e)} <= -5 %",
                        "<= -5 %", float(np.median(v)) <= OLD_SMILE_RATIO,
                        n=len(e), median=float(np.median(v)), share=float((v <= OLD_SMILE_RATIO).mean())))
    return rows


def skull_values(records, key: str) -> np.ndarray:
    v = np.array([x[key] for r in records for x in r["edits"].values() if x.get(key) is not None])
    return v[np.isfinite(v)]


def check_skull(records) -> list[dict]:
    faces = sum(1 for r in records if r.get("closeup"))
    v = skull_values(records, "skull")
    if not len(v):
        return [row("still skull (close-ups)", "no close-up with pixels outside the grown box", "<= 2", None)]
    share = np.median([r["outside_share"] for r in records if r.get("closeup")])
    rows = [row("still skull: close-ups, change outside the face box grown by its size (above the chin), over the codec's",
                f"max {v.max():+.2f}, median {np.median(v):+.2f} grey levels ({len(v)} edits of {faces} faces, "
                f"GIF; outside = {share:.0%} of the image, median)", "<= 2 per edit",
                float(v.max()) <= SKULL, max=float(v.max()), median=float(np.median(v)))]
    v = skull_values(records, "skull_near")
    if len(v):
        rows.append(row("still skull, info: box grown by half its size, above the chin (hair, temples)",
                        f"max {v.max():+.2f}, median {np.median(v):+.2f}, {(v > SKULL).mean():.0%} of edits > 2",
                        "(info)", None, max=float(v.max()), median=float(np.median(v))))
    return rows


def check_dark_paint(records) -> list[dict]:
    v = np.array([x["dark_paint"] for r in records for x in r["edits"].values() if "dark_paint" in x])
    if not len(v):
        return []
    return [row("paint stays inside: dark paint outside the lips' hull + 0.05 eye dist.",
                f"max {pct(v.max())}, median {pct(np.median(v))}, {(v > DARK_PAINT).sum()} of {len(v)} edits over",
                "<= 0.05 % of the face box", float(v.max()) <= DARK_PAINT,
                max=float(v.max()), median=float(np.median(v)), over=int((v > DARK_PAINT).sum()))]


def check_smile_mouth(records) -> list[dict]:
    """``happy`` from closed mouths (own AU25 < 1): the near-black share of the re-detected
    lips' hull (tests/test_motion.py asks < 8 % on four neutral faces)."""
    v = np.array([x["black_lips"] for x in edits_of(records, "happy", lambda r: r["own"]["AU25"] < 1)
                  if "black_lips" in x])
    if not len(v):
        return []
    return [row("happy mouth from closed mouths (own AU25 < 1): near-black share of the lips' hull",
                f"median {np.median(v):.1%}, max {v.max():.1%}, {(v >= BLACK_LIPS).sum()} of {len(v)} "
                f"edits >= 8 %", "(info; a black slit reads as a grimace)", None,
                median=float(np.median(v)), max=float(v.max()), over=int((v >= BLACK_LIPS).sum()))]


def check_blink(records) -> list[dict]:
    v = np.array([x["eye_ratio"] for x in edits_of(records, "blink")])
    if not len(v):
        return []
    return [row("blink: eye aspect ratio out / in", f"median {np.median(v):.2f} ({1 - np.median(v):.0%} "
                f"lower), {(v <= BLINK_RATIO).mean():.0%} of {len(v)} fall >= 60 %", "falls >= 60 % (<= 0.40)",
                float(np.median(v)) <= BLINK_RATIO, median=float(np.median(v)),
                share=float((v <= BLINK_RATIO).mean()))]


def check_talking(talk: dict | None) -> list[dict]:
    if talk is None:
        return []
    r = talk["mouth_ratio"]
    return [row("video: AU12 0 -> 4 track on a neutral talking clip, mouth width at the end vs input",
                f"{r - 1:+.1%} ({talk['clip']}, {talk['frames']} frames)", ">= +8 %", r >= TALK_WIDEN, **talk)]


def build_expression_table(records, talk, surprise_recall) -> list[dict]:
    return (check_recognised(records, surprise_recall) + check_surprise_mouth(records)
            + check_old_smile(records) + check_skull(records) + check_dark_paint(records)
            + check_smile_mouth(records)
            + check_blink(records) + check_talking(talk))
