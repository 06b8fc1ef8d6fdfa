"""`inspect`: histogram, bands, languages, types, S_l, tokens and cost of runs (finished, running, interrupted)
and of exported dataset folders; the PNG."""

import json
import re

import pytest
from PIL import Image

from longwriter_data.cli import main
from longwriter_data.publish.stats import bin_labels, bin_of
from longwriter_data.quality.length import BANDS, band_of
from longwriter_data.testing.synthetic_run import SyntheticJob, write_run
from tests.conftest import write_config, write_pool

ESSAYS = [  # distinct enough that none is skipped as a near-duplicate instruction
    "Write a 2400-word essay on how river deltas form and why cities grow on them.",
    "Compose a 2400-word history of mechanical clocks in medieval European monasteries.",
    "Draft a 2400-word guide to keeping bees on a city rooftop through the winter.",
]


def inspect(capsys, *args) -> tuple[int, str, str]:
    status = main(["inspect", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def band_row(out: str, label: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(label + " "))
    return line[len(label):].split()


def histogram_count(out: str, label: str) -> int:
    line = next(line for line in out.splitlines() if line.strip().startswith(label + " │"))
    return int(line.rsplit(maxsplit=1)[1].replace(",", ""))


@pytest.mark.parametrize(
    "words, band, bin_range",
    [
        (0, "[0, 2k)", (0, 250)),
        (249, "[0, 2k)", (0, 250)),
        (250, "[0, 2k)", (250, 354)),
        (1999, "[0, 2k)", (1414, 2000)),
        (2000, "[2k, 4k)", (2000, 2828)),
        (3999, "[2k, 4k)", (2828, 4000)),
        (4000, "[4k, 8k)", (4000, 5657)),
        (16000, "[16k, 32k]", (16000, 22627)),
        (32000, "[16k, 32k]", (22627, 32000)),
        (32001, ">32k", (32000, None)),
        (500000, ">32k", (32000, None)),
    ],
)
def test_band_and_histogram_bin_edges(words, band, bin_range):
    assert BANDS[band_of(words)].label == band
    assert bin_labels()[bin_of(words)] == bin_range


def _mixed_run(path, **config):
    jobs = [
        SyntheticJob(words=1500, status="rejected", reason="too_short"),
        SyntheticJob(words=1999, status="rejected", reason="too_short", lang="zh"),
        SyntheticJob(words=2000, required=(2000, 2000)),
        SyntheticJob(words=2500, required=(2000, 3000), type="story"),
        SyntheticJob(words=3000, lang="zh", required=(3000, 3000)),
        SyntheticJob(words=5000, required=(10000, 10000)),
        SyntheticJob(words=12000, type="story"),
        SyntheticJob(words=32000, lang="zh", type="story"),
        SyntheticJob(words=33000, status="rejected", reason="too_long"),
        SyntheticJob(words=None),
    ]
    return write_run(path, jobs, target=6, **config)


def test_inspect_prints_histogram_bands_languages_types_s_l_and_tokens(tmp_path, capsys):
    run = _mixed_run(tmp_path / "run")
    status, out, _ = inspect(capsys, run)
    assert status == 0
    assert "10 jobs finished (6 accepted, 3 rejected, 1 failed)" in out
    assert "rejected: too_short 2, too_long 1" in out
    # bands: accepted, rejected, share of the 9 outputs
    assert band_row(out, "[0, 2k)") == ["0", "2", "22.2%"]
    assert band_row(out, "[2k, 4k)") == ["3", "0", "33.3%"]
    assert band_row(out, "[4k, 8k)") == ["1", "0", "11.1%"]
    assert band_row(out, "[8k, 16k)") == ["1", "0", "11.1%"]
    assert band_row(out, "[16k, 32k]") == ["1", "0", "11.1%"]
    assert band_row(out, ">32k") == ["0", "1", "11.1%"]
    # the histogram: log-scaled bins with the 2k and 32k edges drawn across
    assert histogram_count(out, "1,414 – 2,000") == 2
    assert histogram_count(out, "2,000 – 2,828") == 2
    assert histogram_count(out, "22,627 – 32,000") == 1
    assert histogram_count(out, "> 32,000") == 1
    assert re.search(r"├─+ 2k ─+", out) and re.search(r"├─+ 32k ─+", out)
    lines = out.splitlines()
    marker = next(i for i, line in enumerate(lines) if " 2k " in line and "├" in line)
    assert lines[marker - 1].strip().startswith("1,414 – 2,000") and lines[marker + 1].strip().startswith("2,000 –")
    # languages and types: accepted, rejected, failed
    assert band_row(out, "en")[:3] == ["4", "2", "1"]
    assert band_row(out, "zh")[:3] == ["2", "1", "0"]
    assert band_row(out, "story")[:3] == ["3", "0", "0"]
    # S_l as LongBench-Write scores it: 2000 for 2000 and 3000 for 3000 score 100; 2500 for 2000-3000 is scored
    # against the range's upper end, 3000 (90); 5000 for 10000 scores 50
    assert "4 outputs answer an instruction that states a length; mean S_l accepted 85.0" in out
    # tokens: 1000 prompt tokens per finished output, 1.3 completion tokens per word (the failed job paid nothing)
    completion = sum(round(w * 1.3) for w in (1500, 1999, 2000, 2500, 3000, 5000, 12000, 32000, 33000))
    assert f"Tokens: 9,000 input (0 cached), {completion:,} output" in out
    assert "add a `prices:` section" in out


def test_cost_uses_the_recipe_prices_with_cached_input_cheaper(tmp_path, capsys):
    jobs = [SyntheticJob(words=2000, prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=500_000)] * 2
    run = write_run(tmp_path / "run", jobs, prices={"input": 2.0, "cached_input": 0.5, "output": 8.0})
    _, out, _ = inspect(capsys, run)
    # per job: 0.6M fresh x $2 + 0.4M cached x $0.5 + 0.5M output x $8 = $5.40
    assert "Cost: $10.80 ($5.40 per accepted sample) at $2 input, $0.5 cached input, $8 output per 1M tokens." in out


def test_png_is_a_valid_image_with_both_plots(tmp_path, capsys):
    run = _mixed_run(tmp_path / "run")
    png = tmp_path / "out" / "lengths.png"
    status, out, _ = inspect(capsys, run, "--png", png)
    assert status == 0 and f"Wrote {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > 1000 and height > 400  # two readable plots side by side
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 24)) > 50  # drawn, not blank


def test_inspect_reads_a_run_that_is_still_being_written(tmp_path, capsys):
    run = _mixed_run(tmp_path / "run")
    with (run / "jobs.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"seq": 99, "status": "acc')  # a build is in the middle of writing this line
    steps = [  # the failed job (seq 9) paid for its plan; job 10 is in progress
        {"seq": 9, "sample": 0, "step": 0, "text": "plan", "prompt_tokens": 300, "completion_tokens": 50, "cached_tokens": 0},
        {"seq": 10, "sample": 0, "step": 0, "text": "plan", "prompt_tokens": 200, "completion_tokens": 40, "cached_tokens": 100},
        {"seq": 10, "sample": 0, "step": 1, "text": "para", "prompt_tokens": 400, "completion_tokens": 500, "cached_tokens": 0},
        {"seq": 2, "sample": 0, "step": 0, "text": "plan", "prompt_tokens": 7, "completion_tokens": 7},  # counted in its job
    ]
    steps = [{**step, "key": f"k{index}", "finish_reason": "stop"} for index, step in enumerate(steps)]
    (run / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps) + '{"seq": 11, "st')
    status, out, _ = inspect(capsys, run)
    assert status == 0
    assert "10 jobs finished (6 accepted, 3 rejected, 1 failed), 1 unfinished (running, interrupted" in out
    assert band_row(out, "[2k, 4k)") == ["3", "0", "33.3%"]
    completion = sum(round(w * 1.3) for w in (1500, 1999, 2000, 2500, 3000, 5000, 12000, 32000, 33000))
    assert f"Tokens: 9,900 input (100 cached), {completion + 590:,} output" in out
    assert "(spent includes 1 job in progress):" in out  # one job, not "1 jobs"


def test_inspect_on_an_exported_dataset_folder_shows_the_dataset_rows(tmp_path, capsys):
    run = _mixed_run(tmp_path / "run", prices={"input": 1.0, "output": 1.0})
    assert main(["export", str(run), "--test-size", "0.34"]) == 0
    capsys.readouterr()
    status, out, _ = inspect(capsys, run / "dataset", "--png", tmp_path / "dataset.png")
    assert status == 0
    assert "6 samples (train 3, test 3), messages format" in out
    assert band_row(out, "[0, 2k)") == ["0", "0.0%"]
    assert band_row(out, "[2k, 4k)") == ["3", "50.0%"]
    assert band_row(out, "[16k, 32k]") == ["1", "16.7%"]
    assert "mean S_l accepted 85.0" in out  # required lengths come back from the rows and their prompts
    assert "Tokens: 9,000 input" in out and "Cost: $" in out  # from recipe.json: what the whole run paid
    with Image.open(tmp_path / "dataset.png") as image:
        assert image.format == "PNG"


def test_inspect_after_a_build_against_the_fake_server(tmp_path, server, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", ESSAYS[:3])
    config = write_config(tmp_path, server.base_url, pool, target=3)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    capsys.readouterr()
    status, out, _ = inspect(capsys, tmp_path / "run", "--png", tmp_path / "run.png")
    assert status == 0
    assert "3 jobs finished (3 accepted, 0 rejected, 0 failed)" in out
    assert histogram_count(out, "2,000 – 2,828") == 3
    assert band_row(out, "[2k, 4k)") == ["3", "100.0%"]
    assert "mean S_l accepted" in out
    assert (tmp_path / "run.png").stat().st_size > 10_000


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_inspect_of_something_else_is_one_error_line_and_status_2(tmp_path, capsys, make):
    path = tmp_path / "thing"
    if make == "empty":
        path.mkdir()
    elif make == "file":
        path.write_text("hello")
    status, out, err = inspect(capsys, path)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and str(path) in err


def test_prices_and_export_settings_do_not_change_what_is_generated():
    from longwriter_data.config import BuildConfig

    base = {"name": "x", "run_dir": "run", "target": 1, "pools": [{"path": "pool.jsonl"}]}
    priced = {**base, "prices": {"input": 1, "output": 2}, "export": {"hub_repo": "org/name", "private": True}}
    assert BuildConfig.model_validate(base).generative_view() == BuildConfig.model_validate(priced).generative_view()


def test_a_bad_hub_repo_in_the_recipe_names_the_key(tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", ["Write an essay."])
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", pool, export={"hub_repo": "no-owner"})
    assert main(["build", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "export.hub_repo" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "png, message",
    [
        ("run/jobs.jsonl", "exists and is not a PNG image"),  # never overwrite a run's own files
        ("notes.txt", "exists and is not a PNG image"),
        ("folder", "is a folder"),
        ("notes.txt/lengths.png", "notes.txt is a file, not a folder"),
        ("notes.txt/deeper/lengths.png", "notes.txt is a file, not a folder"),
        ("/proc/lengths.png", "/proc is not writable"),  # read-only even for root: found by a probe, not os.access
    ],
)
def test_an_unwritable_png_path_is_one_error_line_and_nothing_is_written(tmp_path, capsys, png, message):
    run = _mixed_run(tmp_path / "run")
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "folder").mkdir()
    path = tmp_path / png
    before = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    status, out, err = inspect(capsys, run, "--png", path)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: --png ") and message in err, err
    assert str(path) in err and out == ""  # refused before the report is printed
    assert {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")} == before


def test_png_replaces_an_earlier_image_and_creates_missing_folders(tmp_path, capsys):
    run = _mixed_run(tmp_path / "run")
    path = tmp_path / "plots" / "new" / "lengths.png"
    assert inspect(capsys, run, "--png", path)[0] == 0
    first = path.read_bytes()
    path.write_bytes(first[:100])  # an older image, say
    assert inspect(capsys, run, "--png", path)[0] == 0
    assert path.read_bytes() == first


def test_inspect_counts_premature_conclusions_per_status(tmp_path, server, capsys):
    concluding = "Write a 2400-word essay on why lighthouses were automated along rocky coasts. [[conclude]]"
    pool = write_pool(tmp_path / "pool.jsonl", [*ESSAYS[:2], concluding])
    config = write_config(tmp_path, server.base_url, pool, target=3)
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    assert "premature_conclusion" in capsys.readouterr().out  # the build's table of reasons
    status, out, _ = inspect(capsys, tmp_path / "run")
    assert status == 0
    # 6 paragraphs a job (2,400 words planned as 6 x 400): 5 non-final each; only the [[conclude]] job's close early
    assert ("Premature conclusions (non-final paragraphs ending with a closing summary): accepted 0 of 10 (0.0%), "
            "in 0 of 2 samples; rejected 5 of 5 (100.0%), in 1 of 1 samples.") in out
    assert "premature_conclusion 1" in out


def _figure(jobs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from longwriter_data.publish.views import draw_lengths
    from longwriter_data.publish.stats import describe

    figure = draw_lengths(describe(jobs), "title")
    FigureCanvasAgg(figure).draw()  # lays the text out, so that its extents are real
    return figure


def _job(seq, words, required=None, status="accepted"):
    from longwriter_data.quality.length import RequiredLength
    from longwriter_data.publish.stats import Job

    return Job(seq=seq, status=status, words=words, required=RequiredLength(required, required) if required else None)


def test_histogram_counts_have_whole_ticks_and_no_two_labels_overlap():
    figure = _figure([_job(0, 2500), _job(1, 2600), _job(2, 40000), _job(3, 1500, status="rejected")])
    histogram = figure.axes[0]
    low, high = histogram.get_ylim()
    assert all(tick == int(tick) for tick in histogram.get_yticks() if low <= tick <= high)
    texts = [t for t in histogram.get_xticklabels() if t.get_text()] + list(histogram.texts)
    assert {t.get_text() for t in texts} >= {"2k", "16k", ">32k", "32k"}
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts]
    for i, (name, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1:]:
            assert not box.overlaps(other_box), f"{name!r} overlaps {other!r}"


def test_an_empty_required_vs_actual_panel_says_so_and_draws_no_axes():
    figure = _figure([_job(0, 2500), _job(1, 3000)])
    panel = figure.axes[1]
    assert not panel.axison
    assert ["no instruction stated a length" in t.get_text() for t in panel.texts] == [True]


def test_outputs_at_the_same_point_are_one_dot_sized_by_their_count_and_the_legend_counts_them():
    jobs = [_job(i, 2100, 2000) for i in range(5)] + [_job(5, 2900, 3000)]
    jobs += [_job(6, 1500, 2000, "rejected"), _job(7, 1500, 2000, "rejected")]
    scatter = _figure(jobs).axes[1]
    dots = {c.get_label(): c for c in scatter.collections}
    assert set(dots) == {"accepted (6 outputs)", "rejected (2 outputs)"}
    accepted = dots["accepted (6 outputs)"]
    assert len(accepted.get_offsets()) == 2
    sizes = sorted(accepted.get_sizes())
    assert sizes[1] == 5 * sizes[0]  # area by count: five outputs, five times the area of one
    assert len(dots["rejected (2 outputs)"].get_offsets()) == 1
    assert scatter.get_legend().get_title().get_text() == "dot area: outputs at that point"


def test_accepted_and_rejected_differ_in_lightness_not_only_in_hue():
    """Colour-blind readers and greyscale prints tell the two apart by lightness (relative luminance)."""
    figure = _figure([_job(0, 2500), _job(1, 1500, status="rejected")])
    legend = figure.axes[0].get_legend()
    colours = {t.get_text(): p.get_facecolor() for p, t in zip(legend.get_patches(), legend.get_texts())}

    def luminance(rgba) -> float:
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    assert abs(luminance(colours["accepted"]) - luminance(colours["rejected"])) >= 0.2


def test_a_run_built_with_relaxed_filters_shows_what_the_default_filters_would_decide(tmp_path, capsys):
    jobs = [SyntheticJob(words=2100, required=(2000, 2000)),  # passes the defaults too
            SyntheticJob(words=2100, required=(6000, 6000)),  # S_l far below the default 80
            SyntheticJob(words=2400, required=(6000, 6000)),
            SyntheticJob(words=1000, status="rejected", reason="too_short")]  # not in the dataset: not judged
    run = write_run(tmp_path / "run", jobs, filters={"min_length_score": None, "max_repeated_ngram_ratio": 0.9})
    status, out, _ = inspect(capsys, run)
    assert status == 0
    assert ("This run relaxed the filters: min_length_score null (default 80), max_repeated_ngram_ratio 0.9 "
            "(default 0.3).") in out
    assert "With the default filters (near-duplicates not checked again), 1 of 3 accepted samples would pass; " \
           "rejected: length_score 2." in out


def test_a_run_built_with_the_default_filters_is_not_judged_again(tmp_path, capsys):
    run = write_run(tmp_path / "run", [SyntheticJob(words=2100, required=(6000, 6000))],
                    filters={"near_duplicate_threshold": 0.9})  # not a per-sample setting
    status, out, _ = inspect(capsys, run)
    assert status == 0 and "default filters" not in out and "relaxed" not in out


def test_a_run_whose_judge_template_was_moved_away_is_still_inspected(tmp_path, capsys, monkeypatch):
    template = tmp_path / "judge.txt"
    template.write_text("Rate $INST$ answered by $RESPONSE$.")
    monkeypatch.chdir(tmp_path)  # the recipe named it relative to where the build ran
    run = write_run(tmp_path / "run", [SyntheticJob(words=2100, required=(2000, 2000))],
                    quality={"judge": {"prompt_file": "judge.txt"}})
    template.unlink()
    status, out, err = inspect(capsys, run)
    assert status == 0, err
    assert "1 job finished (1 accepted" in out and "Estimate vs spent" not in out  # it would price the template


def test_inspect_heading_counts_and_reasons_are_those_of_report_json(tmp_path, capsys):
    from longwriter_data.publish.report import run_report

    jobs = [SyntheticJob(words=1000, status="rejected", reason="too_short"), SyntheticJob(words=None),
            SyntheticJob(words=2100), SyntheticJob(words=900, status="rejected", reason="too_short"),
            SyntheticJob(words=None, reason="write_failed")]
    run = write_run(tmp_path / "run", jobs)
    report = run_report(run / "jobs.jsonl").as_record()
    assert report == {"jobs": 5, "status": {"accepted": 1, "rejected": 2, "failed": 2},
                      "reasons": {"failed": {"plan_failed": 1, "write_failed": 1}, "rejected": {"too_short": 2}}}
    status, out, _ = inspect(capsys, run)
    assert status == 0
    heading = out.split("\n\n")[0].splitlines()
    # statuses in the order their first job came, as before RunReport
    assert heading[1:3] == ["  rejected: too_short 2", "  failed: plan_failed 1, write_failed 1"]
    assert "5 jobs finished (1 accepted, 2 rejected, 2 failed)" in heading[0]


def test_every_answer_paid_for_is_counted_the_retried_bad_ones_too(tmp_path, server, capsys):
    """A paragraph's first answer is junk (HTTP 200 with an error page) and is asked again: both answers are paid
    for, so both count in the job's usage and in what inspect says was spent."""
    from longwriter_data.publish.stats import scan_run

    prompts = [f"Write a 1200-word essay about harbour number {i}. [[junk=gateway]]" for i in range(2)]
    config = write_config(tmp_path, server.base_url, write_pool(tmp_path / "pool.jsonl", prompts), target=2,
                          filters={"min_words": 1000})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    served = server.stats()["requests"]
    records = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()]
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    assert any(step["attempts"] == 2 for step in steps)  # the junk was asked again
    assert sum(record["usage"]["requests"] for record in records) == served
    assert scan_run(run).usage.requests == served


@pytest.mark.parametrize("content", ['{"usage": ', "[1, 2]"])
def test_inspect_names_a_damaged_recipe_json_of_an_exported_dataset(tmp_path, capsys, content):
    run = _mixed_run(tmp_path / "run")
    assert main(["export", str(run)]) == 0
    (run / "dataset" / "recipe.json").write_text(content)
    capsys.readouterr()
    assert main(["inspect", str(run / "dataset")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / 'dataset' / 'recipe.json'}: damaged" in err, err


def test_the_answers_of_a_job_that_failed_on_bad_answers_are_counted_too(tmp_path, server):
    """Every answer to an [[empty]] job is empty: its plan step fails after its attempts, the job fails, and the
    answers it paid for still count in its record and in what inspect says was spent."""
    from longwriter_data.publish.stats import scan_run

    prompts = ["Write a 1200-word essay about harbour number 0.", "Write a 1200-word essay about docks. [[empty]]"]
    config = write_config(tmp_path, server.base_url, write_pool(tmp_path / "pool.jsonl", prompts), target=1,
                          filters={"min_words": 1000}, generation={"step_attempts": 3})
    main(["build", "--config", str(config), "--no-progress"])
    run = tmp_path / "run"
    failed = [json.loads(line) for line in (run / "jobs.jsonl").read_text().splitlines()
              if json.loads(line)["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["usage"]["requests"] == 3  # three empty answers to its plan step
    assert scan_run(run).usage.requests == server.stats()["requests"]
