"""Audit the rule-based answer judge against hand labels.

Three modes:

Draw a sample (seed 0) of judged answers from collection runs and write
data/judge_audit.jsonl with the current judge's verdict and empty ``human``
and ``note`` fields:

    PYTHONPATH=src python scripts/audit_judge.py \
      --sample gemma /tmp/runs/gemma/samples.jsonl 150 \
      --sample qwen /tmp/runs/qwen/samples.jsonl 100

Each input is a collection file (JSONL, one question per line with keys id,
question, answers, category, source and samples: [{text, tokens, verdict}]).
The script draws COUNT questions per file without replacement and one sample
per drawn question.  A file that a running job is still appending to is read
once, and a torn last line is skipped.  ``--lines MODEL=K`` reads only the
first K complete lines of that model's file, which reproduces a sample drawn
when the file had K lines.

Re-run the current judge on an existing audit file, keeping the hand labels
(the verdict at drawing time stays in ``verdict_at_draw``):

    PYTHONPATH=src python scripts/audit_judge.py --rejudge

Write docs/judge-audit.md from the audit file:

    PYTHONPATH=src python scripts/audit_judge.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIT_PATH = ROOT / "data" / "judge_audit.jsonl"
REPORT_PATH = ROOT / "docs" / "judge-audit.md"
SEED = 0
VERDICTS = ("correct", "wrong", "refusal")
ERROR_TYPES = ("false correct", "false wrong", "refusal confusion")

# A hand-label note starts with a cause tag in brackets, "[hedged list] ...".
# Each known tag gets a description and the state of its fix in the report.
CAUSES = {
    "hedged list": (
        "The first line names several candidates and the judge accepts it when any one of them is an alias. "
        "Not fixed in the judge: rejecting lists would also reject answers such as \"Antigua and Barbuda\" or "
        "\"London, United Kingdom\", so a fix needs to know how many entities the expected answer has."
    ),
    "incidental match": (
        "An alias occurs in a sentence that does not answer the question. A whole-token match cannot tell an "
        "answer from a mention, and long chat-style answers make such mentions more likely. Not fixed."
    ),
    "surname alias": (
        "A surname-only alias (\"Kennedy\") accepts a relative with the same surname. Fix in the data by "
        "dropping the bare surname where a namesake is a likely wrong answer. A judge rule that rejects a "
        "surname preceded by a given name absent from the full alias would also need a list of titles "
        "(\"President\", \"Sir\"). Not fixed."
    ),
    "loose alias": (
        "An alias that is only a modifier (\"soy\") matches a different thing that it modifies "
        "(\"soy bean oil\"). Fix in the data by using the full noun (\"soybeans\", \"soy beans\", "
        "\"soy milk\"). Not fixed."
    ),
    "number format": (
        "The same number written another way: \"25.0\" for 25. Fixed: `normalize` now drops trailing zeros "
        "of a decimal fraction."
    ),
    "aliases incomplete": "The aliases miss a common name of the answer.",
    "gold debatable": "The gold answer depends on a definition that the question leaves open.",
    "sign dropped": (
        "Normalisation turns \"-\" into a space, so \"-273\" and \"273\" are the same token. Not fixed."
    ),
}


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_questions(path: Path, max_lines: int | None) -> tuple[list[tuple[int, dict]], int]:
    """Return ``(line_number, record)`` for each line of a collection file, and the complete lines read.

    A writer that is still running can leave a torn last line, so a last line
    that does not parse is skipped with a warning.  A bad line elsewhere raises
    ValueError.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    if max_lines is not None:
        lines = lines[:max_lines]
    records: list[tuple[int, dict]] = []
    complete = len(lines)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            if number == len(lines):
                print(f"warning: skipped torn last line {number} of {path}", file=sys.stderr)
                complete -= 1
                continue
            raise ValueError(f"{path}:{number} is not valid JSON ({error}); fix or remove that line") from error
    return records, complete


def draw_items(model: str, path: Path, count: int, max_lines: int | None, rng: random.Random) -> list[dict]:
    """Draw ``count`` questions from ``path`` and one sample from each."""
    from hnggml.judge import judge

    records, lines_read = read_questions(path, max_lines)
    questions = [(n, q) for n, q in records if q.get("samples")]
    if count > len(questions):
        raise ValueError(f"--sample {model} asks for {count} questions but {path} has only {len(questions)} with samples")
    print(f"{model}: {len(questions)} questions with samples read from {path}", file=sys.stderr)
    items = []
    for line_number, question in rng.sample(questions, count):
        sample = rng.choice(question["samples"])
        answerable = question.get("answerable", True)
        verdict = judge(sample["text"], question["answers"], answerable)
        items.append(
            {
                "id": question["id"],
                "model": model,
                "input": str(path),
                "lines_read": lines_read,
                "line": line_number,
                "question": question["question"],
                "answers": question["answers"],
                "answerable": answerable,
                "category": question.get("category", ""),
                "source": question.get("source", ""),
                "response": sample["text"],
                "collected_verdict": sample.get("verdict"),
                "verdict_at_draw": verdict,
                "verdict": verdict,
                "human": "",
                "note": "",
            }
        )
    return items


def read_audit(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_audit(path: Path, items: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))


def rejudge(items: list[dict]) -> int:
    """Set ``verdict`` to the current judge's label and return how many verdicts changed."""
    from hnggml.judge import judge

    changed = 0
    for item in items:
        verdict = judge(item["response"], item["answers"], item.get("answerable", True))
        changed += verdict != item["verdict"]
        item["verdict"] = verdict
    return changed


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def error_type(verdict: str, human: str) -> str | None:
    """Return the error type of a disagreement, or None when the judge and the hand label agree.

    Any disagreement that involves "refusal" on either side is a refusal
    confusion.  Otherwise the judge either accepted a wrong answer (false
    correct) or rejected a right one (false wrong).
    """
    if verdict == human:
        return None
    if "refusal" in (verdict, human):
        return "refusal confusion"
    return "false correct" if verdict == "correct" else "false wrong"


def rate_cell(k: int, n: int) -> str:
    from hnggml.stats import wilson_interval

    if n == 0:
        return "n/a"
    low, high = wilson_interval(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def md_cell(value: object, limit: int | None = None) -> str:
    """Render ``value`` for a Markdown table cell on one line, cut to ``limit`` characters."""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ⏎ ")
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def check_labels(items: list[dict]) -> None:
    for item in items:
        if item["human"] not in VERDICTS:
            raise ValueError(
                f"item {item['id']} ({item['model']}) has human label {item['human']!r}; "
                f"label every item with one of {VERDICTS} before --report"
            )


def rate_rows(items: list[dict], key: str) -> list[str]:
    """Table rows of error rate per model and overall, judged by ``item[key]``."""
    rows = []
    models = sorted({item["model"] for item in items})
    for model in [*models, "all"]:
        group = [item for item in items if model == "all" or item["model"] == model]
        types = Counter(error_type(item[key], item["human"]) for item in group)
        errors = len(group) - types[None]
        cells = [rate_cell(errors, len(group))] + [str(types[name]) for name in ERROR_TYPES]
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    return rows


def confusion_rows(items: list[dict]) -> list[str]:
    counts = Counter((item["verdict"], item["human"]) for item in items)
    rows = ["| judge \\ human | " + " | ".join(VERDICTS) + " |", "|---|---:|---:|---:|"]
    for verdict in VERDICTS:
        rows.append(f"| {verdict} | " + " | ".join(str(counts[verdict, human]) for human in VERDICTS) + " |")
    return rows


def cause_tag(note: str) -> str:
    """Return the bracketed tag at the start of a note, or "" when it has none."""
    if note.startswith("[") and "]" in note:
        return note[1 : note.index("]")]
    return ""


def is_lenient_agreement(item: dict) -> bool:
    """Return True for a disagreement that a lenient reader would not count.

    Those are hedged lists that contain the answer, and items whose note calls
    the hand label borderline.
    """
    if item["verdict"] == item["human"]:
        return False
    return cause_tag(item["note"]) == "hedged list" or "borderline" in item["note"].lower()


def draw_command(items: list[dict]) -> str:
    """Return the command line that draws this sample again from the same files."""
    parts = ["PYTHONPATH=src python scripts/audit_judge.py"]
    counts = Counter(item["model"] for item in items)
    seen: dict[str, dict] = {}
    for item in items:
        seen.setdefault(item["model"], item)
    for model, item in seen.items():
        parts.append(f"--sample {model} {item['input']} {counts[model]}")
    for model, item in seen.items():
        parts.append(f"--lines {model}={item['lines_read']}")
    return " \\\n    ".join(parts)


def cause_rows(items: list[dict]) -> list[str]:
    """Table rows with the number of items per cause tag, at draw time and now."""
    tags = sorted({cause_tag(item["note"]) for item in items if cause_tag(item["note"])})
    rows = [
        "| cause | errors at draw | errors now | items | what it is |",
        "|---|---:|---:|---|---|",
    ]
    for tag in tags:
        tagged = [item for item in items if cause_tag(item["note"]) == tag]
        then = sum(item["verdict_at_draw"] != item["human"] for item in tagged)
        now = sum(item["verdict"] != item["human"] for item in tagged)
        ids = ", ".join(f"{item['model']}:{item['id']}" for item in tagged)
        rows.append(f"| {tag} | {then} | {now} | {ids} | {md_cell(CAUSES.get(tag, ''))} |")
    return rows


def render_report(items: list[dict]) -> str:
    check_labels(items)
    n = len(items)
    by_model = Counter(item["model"] for item in items)
    header = "| model | error rate, 95% Wilson interval (%) | false correct | false wrong | refusal confusion |"
    rule = "|---|---|---:|---:|---:|"
    changed = sum(item["verdict"] != item["verdict_at_draw"] for item in items)
    lines = [
        "# Judge audit",
        "",
        "This page measures how often the rule-based answer judge (`hnggml.judge.judge`) disagrees with a",
        "reader on answers that the models really produced.  `scripts/audit_judge.py --report` writes it from",
        "`data/judge_audit.jsonl`; edit the `human` and `note` fields there, not this page.",
        "",
        "## Method",
        "",
        f"- Sample: {n} judged answers, "
        + ", ".join(f"{count} from {model}" for model, count in sorted(by_model.items()))
        + ".  The collection files were read once while",
        "  collection was still running.  The script draws questions without replacement (seed 0) and one of each",
        "  question's sampled answers.  The `line` field in the audit file records where each question sat in its file.",
        "  This command draws the same sample again from the same files:",
        "",
        "  ```sh",
        "  " + draw_command(items).replace("\n", "\n  "),
        "  ```",
        "",
        "- Models: `gemma` is Gemma 3 270M base (Q4_K_M) with few-shot `Q:`/`A:` prompts; `qwen` is",
        "  Qwen2.5-Coder 0.5B Instruct (Q4_K_M) with a chat prompt that asks for the answer only.",
        "- Hand label: one reader labelled every item by the rule the judge intends.  Only the first line of the",
        "  response counts.  It is `correct` when it gives the intended answer under any reasonable name, `wrong`",
        "  when it gives another answer, and `refusal` when it declines or says it does not know.  Where the gold",
        "  aliases are wrong or miss a common name, the hand label follows the facts and the item counts as a judge",
        "  error (label noise).",
        "- Error types: *false correct* means the judge said correct and the reader said wrong.  *False wrong* is",
        "  the reverse.  *Refusal confusion* is any disagreement with `refusal` on one side.",
        "- Intervals: Wilson score, 95% (`hnggml.stats.wilson_interval`).  One reader labelled the items and no",
        "  second reader checked them, so the rates carry that reader's own error as well.",
        "",
        "## Results",
        "",
    ]
    if changed:
        lines += [
            f"The judge was changed after the labels were written, and {changed} of {n} verdicts changed.",
            "",
            "Error rate with the judge as it was when the sample was drawn (`verdict_at_draw`):",
            "",
            header,
            rule,
            *rate_rows(items, "verdict_at_draw"),
            "",
            "Error rate with the current judge (`verdict`):",
            "",
        ]
    lines += [header, rule, *rate_rows(items, "verdict"), ""]
    lines += ["Verdicts of the current judge against the hand labels, all models:", "", *confusion_rows(items), ""]
    for verdict in ("correct", "wrong"):
        judged = [item for item in items if item["verdict"] == verdict]
        disputed = sum(item["human"] != verdict for item in judged)
        lines.append(f"- Of the answers the judge calls {verdict}, the reader disputes {rate_cell(disputed, len(judged))}.")
    lines.append("")

    lines += [
        "## Disagreements",
        "",
        "Every item where the current judge and the hand label differ.  The response is shown up to 160 characters,",
        "with ⏎ marking a line break.",
        "",
        "| model | id | question | aliases | response | judge | human | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in items:
        if item["verdict"] == item["human"]:
            continue
        cells = [item["model"], item["id"], item["question"], item["answers"], item["response"]]
        cells += [item["verdict"], item["human"], item["note"]]
        lines.append("| " + " | ".join(md_cell(cell, 160) for cell in cells) + " |")

    fixed = [item for item in items if item["verdict_at_draw"] != item["human"] and item["verdict"] == item["human"]]
    if fixed:
        lines += [
            "",
            "Items that the judge got wrong when the sample was drawn and gets right now:",
            "",
            "| model | id | question | response | judge then | judge now |",
            "|---|---|---|---|---|---|",
        ]
        for item in fixed:
            cells = [item["model"], item["id"], item["question"], item["response"], item["verdict_at_draw"], item["verdict"]]
            lines.append("| " + " | ".join(md_cell(cell, 160) for cell in cells) + " |")

    lenient = sum(is_lenient_agreement(item) for item in items)
    errors_now = sum(item["verdict"] != item["human"] for item in items)
    lines += [
        "",
        "## Main causes",
        "",
        "Each note in the audit file starts with a cause tag.  The table counts the judge errors per tag with the",
        "judge as it was when the sample was drawn and with the current judge.  Tags on items without an error",
        "record alias problems that did not change the verdict.",
        "",
        *cause_rows(items),
        "",
        "A lenient reader who accepts a hedged list that contains the answer, and who sides with the judge on the",
        f"items noted as borderline, would count {lenient} fewer errors: "
        f"{rate_cell(errors_now - lenient, len(items))} with the current judge.",
    ]
    refusals = sum("refusal" in (item["verdict"], item["human"]) for item in items)
    if refusals == 0:
        lines += [
            "",
            "Neither the judge nor the reader labelled any sampled answer a refusal, so this audit does not test",
            "the refusal patterns.",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sample",
        nargs=3,
        action="append",
        metavar=("MODEL", "PATH", "COUNT"),
        help="draw COUNT questions from the collection file PATH and label them MODEL; repeat per model",
    )
    parser.add_argument(
        "--lines",
        action="append",
        default=[],
        metavar="MODEL=K",
        help="read only the first K lines of MODEL's collection file",
    )
    parser.add_argument("--rejudge", action="store_true", help="re-run the current judge on the audit file")
    parser.add_argument("--report", action="store_true", help=f"write {REPORT_PATH.relative_to(ROOT)}")
    parser.add_argument("--audit", type=Path, default=AUDIT_PATH, help="audit file (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="let --sample overwrite an existing audit file")
    args = parser.parse_args(argv)
    if not (args.sample or args.rejudge or args.report):
        parser.error("give --sample, --rejudge or --report")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    if args.sample:
        if args.audit.exists() and not args.force:
            raise SystemExit(f"{args.audit} exists and may contain hand labels; pass --force to overwrite it")
        max_lines: dict[str, int] = {}
        for entry in args.lines:
            model, _, value = entry.partition("=")
            if not value.isdigit():
                raise SystemExit(f"--lines expects MODEL=K with K a line count, got {entry!r}")
            max_lines[model] = int(value)
        rng = random.Random(SEED)
        items: list[dict] = []
        for model, path, count in args.sample:
            if not count.isdigit():
                raise SystemExit(f"--sample {model} {path} expects a question count, got {count!r}")
            items += draw_items(model, Path(path), int(count), max_lines.get(model), rng)
        write_audit(args.audit, items)
        print(f"wrote {len(items)} items to {args.audit}", file=sys.stderr)

    if args.rejudge:
        items = read_audit(args.audit)
        changed = rejudge(items)
        write_audit(args.audit, items)
        print(f"re-judged {len(items)} items, {changed} verdicts changed", file=sys.stderr)

    if args.report:
        write_atomic(REPORT_PATH, render_report(read_audit(args.audit)))
        print(f"wrote {REPORT_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
