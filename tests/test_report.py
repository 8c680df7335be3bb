"""Tests of scirobust.report: summary table, standard figures, self-contained report.html."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from scirobust import DataError, Record, Results
from scirobust.report import (
    COLORS,
    attack_styles,
    plot_metric_vs_eps,
    plot_ratio,
    summary_rows,
    write_report,
)

NAN = float("nan")
WARNING = "Model outputs look like <probabilities> & may mask gradients"
ROLE = {"clean": "clean", "random_sign": "random", "random_gaussian": "random"}


def R(case: str, model: str, attack: str, eps: float, metric: str, *values, ratio: bool = False,
      variable: str = "", **kw) -> Record:
    """A test record; its kind comes from the table above (never from the report)."""
    kind = "ratio" if ratio else ROLE.get(attack, "adversarial")
    return Record(case, model, attack, eps, metric, *values, kind=kind, variable=variable, **kw)


def _regression() -> Results:
    """Hand-built regression results: 2-draw random controls, two attacks, per-variable RMSE."""
    recs = [R("toy", "net", "clean", 0.0, "rmse", 0.1, 0.01, 50)]
    recs += [R("toy", "net", "clean", 0.0, "rmse", 0.1, 0.01, 50, variable=v) for v in "uv"]
    table = {  # attack -> eps -> (value, stderr, spread)
        "random_sign": {0.01: (0.10123, 0.0101, 0.0004), 0.1: (0.12, 0.011, 0.002)},
        "random_gaussian": {0.01: (0.1011, 0.0101, 0.0003), 0.1: (0.119, 0.011, 0.003)},
        "fgsm": {0.01: (0.15, 0.012, NAN), 0.1: (0.61234, 0.0456, NAN)},
        "pgd_linf": {0.01: (0.16, 0.013, NAN), 0.1: (0.7, 0.05, NAN)},
    }
    for attack, by_eps in table.items():
        for eps, (value, se, spread) in by_eps.items():
            dropped = 3 if (attack, eps) == ("pgd_linf", 0.1) else 0
            recs.append(R("toy", "net", attack, eps, "rmse", value, se, 50, spread, dropped))
            for k, v in enumerate("uv"):
                recs.append(R("toy", "net", attack, eps, "rmse", value * (1 + k), se, 50,
                              spread, variable=v))
    for attack in ("fgsm", "pgd_linf"):
        for eps in (0.01, 0.1):
            base = table["random_sign"][eps][0]
            value = table[attack][eps][0]
            recs.append(R("toy", "net", attack, eps, "rmse", value / base, 0.25, 50,
                          baseline="random_sign", ratio=True))
            for v in "uv":
                recs.append(R("toy", "net", attack, eps, "rmse", value / base, 0.25, 50,
                              baseline="random_sign", ratio=True, variable=v))
    metadata = {
        "description": "A toy regression network.\n\nSecond paragraph about the data.",
        "notes": ["Exact: the attack formulas.", "Stand-in: a 4-input toy network."],
        "warnings": [WARNING],
        "checks": {"randomised_output": False, "zero_gradient_fraction": 0.0},
        "config": {"budget": {"norm": "linf", "relative": False}, "epsilons": [0.01, 0.1]},
        "seed": 7,
        "torch_version": "2.x",
        "wall_time_s": 1.25,
    }
    return Results(recs, metadata)


def _classification() -> Results:
    """Two models, accuracy only, one epsilon, some NaN stderr, no ratio records."""
    recs = []
    for model, (clean, rnd, adv) in {"small": (0.9, 0.88, 0.2), "big": (0.95, 0.94, 0.5)}.items():
        recs += [
            R("mnist", model, "clean", 0.0, "accuracy", clean, 0.01, 100),
            R("mnist", model, "random_sign", 0.03, "accuracy", rnd, NAN, 100, 0.01),
            R("mnist", model, "fgsm", 0.03, "accuracy", adv, 0.04, 100),
        ]
    return Results(recs, {"config": {"budget": {"relative": True}}})


def _refs_to_files(text: str) -> list[str]:
    """Every src=/href= value that is not an inline data: URI."""
    return [m for m in re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", text)
            if not m.startswith("data:")]


def test_write_report_creates_figures_and_self_contained_html(tmp_path: Path) -> None:
    results = _regression()
    path = write_report(results, tmp_path, title="Toy <audit>")
    assert path == tmp_path / "report.html"
    figures = tmp_path / "figures"
    for stem in ("rmse_vs_eps", "rmse_ratio", "rmse_per_variable_vs_eps",
                 "rmse_per_variable_ratio"):
        assert (figures / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (figures / f"{stem}.svg").read_bytes()[:2000]
    assert not (tmp_path / "results.csv").exists()
    assert not (tmp_path / "results.json").exists()

    text = path.read_text(encoding="utf-8")
    assert _refs_to_files(text) == []
    assert 'src="figures/' not in text
    assert text.count('src="data:image/png;base64,') == 4
    # escaped text: title, warning, description, notes
    assert "<title>Toy &lt;audit&gt;</title>" in text
    assert "Model outputs look like &lt;probabilities&gt; &amp; may mask gradients" in text
    assert "<probabilities>" not in text
    assert text.index("Warnings") < text.index("Summary")
    assert "<p>Second paragraph about the data.</p>" in text
    assert "Stand-in: a 4-input toy network." in text
    assert "dropped samples" in text  # pgd_linf at 0.1 dropped 3
    assert "<details>" in text and "zero_gradient_fraction" in text
    assert "0.6123 ± 0.046" in text  # summary table cell


def test_summary_rows_regression() -> None:
    results = _regression()
    results.records = [r for r in results.records if not r.variable]
    rows = summary_rows(results)
    assert rows[0] == ["model", "epsilon", "clean", "random_sign", "random_gaussian", "fgsm",
                       "pgd_linf", "fgsm / random_sign", "pgd_linf / random_sign"]
    assert len(rows) == 3  # header + two epsilons
    assert rows[1][:5] == ["net", "0.01", "0.1 ± 0.01", "0.1012 ± 0.01", "0.1011 ± 0.01"]
    assert rows[2][5] == "0.6123 ± 0.046"
    assert rows[2][7] == f"{0.61234 / 0.12:.4g} ± 0.25"  # the stored ratio record
    rows = summary_rows(_regression(), "rmse")
    assert rows[0][:3] == ["model", "variable", "epsilon"]
    assert [r[1] for r in rows[1:]] == ["", "", "u", "u", "v", "v"]
    assert rows[6][6] == f"{2 * 0.61234:.4g} ± 0.046"  # fgsm of v at eps 0.1


def test_summary_rows_classification_computes_ratio_and_handles_nan() -> None:
    rows = summary_rows(_classification())
    assert rows[0] == ["model", "epsilon", "clean", "random_sign", "fgsm", "fgsm / random_sign"]
    assert [r[0] for r in rows[1:]] == ["small", "big"]
    small = rows[1]
    assert small[1:5] == ["0.03", "0.9 ± 0.01", "0.88", "0.2 ± 0.04"]  # NaN stderr: value only
    ratio, se = small[5].split(" ± ")
    assert math.isclose(float(ratio), 0.2 / 0.88, rel_tol=1e-3)
    assert math.isclose(float(se), 0.2 / 0.88 * 0.04 / 0.2, rel_tol=0.05)


def test_classification_report_has_no_ratio_figure(tmp_path: Path) -> None:
    path = write_report(_classification(), tmp_path)
    assert (tmp_path / "figures" / "accuracy_vs_eps.png").exists()
    assert not list((tmp_path / "figures").glob("*ratio*"))
    text = path.read_text(encoding="utf-8")
    assert "No warnings." in text
    assert _refs_to_files(text) == []


def test_no_random_control(tmp_path: Path) -> None:
    results = Results([
        R("c", "m", "clean", 0.0, "mae", 1.0, 0.1, 10),
        R("c", "m", "fgsm", 0.5, "mae", 3.0, NAN, 10),
    ])
    assert summary_rows(results)[0] == ["model", "epsilon", "clean", "fgsm"]
    with pytest.raises(DataError, match="random control"):
        plot_ratio(results, "mae")
    text = write_report(results, tmp_path).read_text(encoding="utf-8")
    assert "No random control" in text
    assert not list((tmp_path / "figures").glob("*ratio*"))


def test_regenerate_from_saved_directory_with_case_figure_and_table(tmp_path: Path) -> None:
    _regression().save(tmp_path)
    case_dir = tmp_path / "figures" / "case"
    case_dir.mkdir(parents=True)
    fig = Figure(figsize=(1.5, 1.0))
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(case_dir / "b_field.png", dpi=40)
    fig.savefig(case_dir / "a_error_map.png", dpi=40)
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "paper_comparison.csv").write_text(
        "quantity,paper,here\nRMSE ratio,4.2,3.9<x>\n", encoding="utf-8")

    loaded = Results.load(tmp_path)
    text = write_report(loaded, tmp_path).read_text(encoding="utf-8")
    assert "Case figures" in text
    png = base64.b64encode((case_dir / "b_field.png").read_bytes()).decode()
    assert png in text
    assert text.index('alt="a_error_map"') < text.index('alt="b_field"')
    assert "<caption>paper_comparison</caption>" in text
    assert "<th>paper</th>" in text and "<td>3.9&lt;x&gt;</td>" in text
    assert "Model outputs look like &lt;probabilities&gt;" in text  # metadata survived save
    assert _refs_to_files(text) == []
    assert (case_dir / "b_field.png").exists()  # case figures are kept


def test_empty_results_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no records"):
        write_report(Results(), tmp_path)
    with pytest.raises(DataError):
        summary_rows(Results())
    with pytest.raises(DataError):
        plot_metric_vs_eps(Results(), "rmse")
    assert not (tmp_path / "report.html").exists()
    with pytest.raises(DataError, match="mae"):
        summary_rows(_regression(), "mae")


def test_plot_helpers_on_given_axes_and_log_scale() -> None:
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    assert plot_metric_vs_eps(_regression(), "rmse", ax=ax) is fig
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["clean", "random_sign", "random_gaussian", "fgsm", "pgd_linf"]
    assert ax.get_yscale() == "linear"

    wide = Results([
        R("c", "m", "clean", 0.0, "mse", 1e-4, NAN, 5),
        R("c", "m", "random_sign", 0.1, "mse", 2e-4, NAN, 5, 1e-5),
        R("c", "m", "fgsm", 0.1, "mse", 0.5, NAN, 5),
    ])
    fig = plot_metric_vs_eps(wide, "mse")
    assert fig.axes[0].get_yscale() == "log"

    fig = plot_ratio(_regression(), "rmse")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "fgsm" in labels and "random_sign" not in labels
    assert "relative perturbation" in plot_metric_vs_eps(_classification(), "accuracy")\
        .axes[0].get_xlabel()
    assert len([a for a in plot_metric_vs_eps(_classification(), "accuracy").axes
                if a.get_visible()]) == 2  # one panel per model


def test_palette_roles_and_consistent_styles() -> None:
    assert COLORS["clean"] == "#000000"
    assert len({COLORS["clean"], COLORS["random"], COLORS["adversarial"]}) == 3
    assert COLORS.fgsm == COLORS["fgsm"]
    styles = attack_styles(_regression())
    assert styles["random_sign"].kind == "random"
    assert styles["fgsm"].kind == "adversarial"
    assert styles["fgsm"].color == COLORS["fgsm"]
    assert styles["random_sign"].color == COLORS["random_sign"]
    colors = [styles[a].color for a in ("random_sign", "random_gaussian", "fgsm", "pgd_linf")]
    assert len(set(colors)) == 4
    # the same attack is drawn in the same colour in every figure
    value_fig = plot_metric_vs_eps(_regression(), "rmse")
    ratio_fig = plot_ratio(_regression(), "rmse")

    def color_of(fig: Figure, label: str) -> str:
        handles, labels = fig.axes[0].get_legend_handles_labels()
        return handles[labels.index(label)].get_color()

    assert color_of(value_fig, "fgsm") == color_of(ratio_fig, "fgsm") == COLORS["fgsm"]


def test_standard_figures_can_be_switched_off(tmp_path: Path) -> None:
    """Cases whose records are not an epsilon sweep show only their own figures."""
    results = _regression()
    results.metadata["standard_figures"] = False
    html = write_report(results, tmp_path).read_text()
    assert not list(tmp_path.glob("figures/*.png"))
    assert "rmse_vs_eps" not in html
    results.metadata["standard_figures"] = True
    write_report(results, tmp_path)
    assert list((tmp_path / "figures").glob("*_vs_eps.png"))


def test_metrics_without_an_epsilon_sweep_get_no_vs_eps_figure(tmp_path: Path) -> None:
    """A metric recorded only at epsilon = 0 (e.g. a clean fit quality) is not plotted vs eps."""
    results = _regression()
    results.records.append(R("case", "m", "clean", 0.0, "fit_rmse", 0.1, 0.01, 10))
    write_report(results, tmp_path)
    assert not list(tmp_path.glob("figures/fit_rmse*"))
    assert list(tmp_path.glob("figures/rmse_vs_eps.png"))


def test_figures_and_tables_classify_attacks_by_kind_not_by_name(tmp_path: Path) -> None:
    """Labels that look like another role: a random control called "gradient_jitter" and an
    attack called "random_walk_attack" must be drawn as their kind says."""
    recs = [Record("c", "m", "clean", 0.0, "rmse", 1.0, 0.1, 20, kind="clean")]
    for eps, (rnd, adv) in {0.1: (1.1, 3.0), 0.2: (1.3, 6.0)}.items():
        recs += [
            Record("c", "m", "gradient_jitter", eps, "rmse", rnd, 0.1, 20, 0.05, kind="random"),
            Record("c", "m", "random_walk_attack", eps, "rmse", adv, 0.2, 20,
                   kind="adversarial"),
            Record("c", "m", "random_walk_attack", eps, "rmse", adv / rnd, 0.3, 20,
                   baseline="gradient_jitter", kind="ratio"),
        ]
    results = Results(recs)
    styles = attack_styles(results)
    assert styles["gradient_jitter"].kind == "random"
    assert styles["random_walk_attack"].kind == "adversarial"
    assert styles["gradient_jitter"].color in (COLORS["blue"], COLORS["sky_blue"],
                                               COLORS["bluish_green"])
    fig = plot_ratio(results, "rmse")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "random_walk_attack" in labels and "gradient_jitter" not in labels
    assert summary_rows(results)[0] == ["model", "epsilon", "clean", "gradient_jitter",
                                        "random_walk_attack",
                                        "random_walk_attack / gradient_jitter"]
    text = write_report(results, tmp_path).read_text(encoding="utf-8")
    assert ("random controls: gradient_jitter · adversarial attacks: random_walk_attack"
            in text)
    assert (tmp_path / "figures" / "rmse_ratio.png").exists()


def test_steps_are_separate_series_and_verdicts_come_first(tmp_path: Path) -> None:
    recs = []
    for step in (1, 2):
        recs += [
            Record("w", "afno", "clean", 0.0, "lat_rmse", 1.0 * step, kind="clean",
                     variable="z", step=step),
            Record("w", "afno", "random_sign", 0.1, "lat_rmse", 1.1 * step, kind="random",
                     variable="z", step=step),
            Record("w", "afno", "fgsm", 0.1, "lat_rmse", 3.0 * step, kind="adversarial",
                     variable="z", step=step),
        ]
    results = Results(recs, {"step_label": "lead (steps)", "verdicts": [
        {"claim": "FGSM hurts far more than noise.", "criterion": "ratio >= 2",
         "outcome": "not reproduced", "detail": "ratio 1.3"}], "notes": ["a note"]})
    rows = summary_rows(results)
    assert rows[0][:3] == ["model", "variable", "lead (steps)"]
    assert [r[2] for r in rows[1:]] == ["1", "2"] and rows[2][5:7] == ["2.2", "6"]
    text = write_report(results, tmp_path).read_text(encoding="utf-8")
    assert "Verdict: not reproduced." in text
    assert text.index("Verdict: not reproduced.") < text.index("Summary")
    fig = plot_metric_vs_eps(results, "lat_rmse", variable="z", step=2)
    assert fig.get_suptitle().startswith("lat_rmse of z at step 2 vs ε")
    with pytest.raises(DataError, match="variable 'z', step 3"):
        plot_metric_vs_eps(results, "lat_rmse", variable="z", step=3)


def test_flat_metadata_reads_as_tables_and_the_case_picks_the_headline(tmp_path: Path) -> None:
    results = _regression()
    results.records.append(R("toy", "net", "clean", 0.0, "median_error", 0.05, 0.01, 50))
    results.records.append(R("toy", "net", "fgsm", 0.1, "median_error", 0.07, 0.01, 50))
    results.records.append(R("toy", "net", "random_sign", 0.1, "median_error", 0.06, 0.01, 50))
    results.records.append(R("toy", "net", "fgsm", 0.1, "median_error", 7 / 6, 0.1, 50,
                             baseline="random_sign", ratio=True))
    results.metadata["settings"] = {"epochs": 500, "lr": 0.001, "hidden": [64, 64]}
    results.metadata["headline_metric"] = "median_error"
    text = write_report(results, tmp_path).read_text(encoding="utf-8")
    assert "<h3>settings</h3>" in text and "<th>epochs</th><td>500</td>" in text
    assert '"epochs": 500' not in text  # not a JSON dump
    summary = text[text.index("<h2>Summary</h2>"):]
    assert summary.index("median_error under fgsm") < summary.index("RMSE")


def test_headlines_quote_the_last_step(tmp_path: Path) -> None:
    recs = []
    for step, ratio in ((1, 1.2), (4, 2.5)):
        recs += [Record("w", "afno", "clean", 0.0, "lat_rmse", 1.0, kind="clean", variable="z",
                        step=step),
                 Record("w", "afno", "random_sign", 0.1, "lat_rmse", 1.0, kind="random",
                        variable="z", step=step),
                 Record("w", "afno", "fgsm", 0.1, "lat_rmse", ratio, kind="adversarial",
                        variable="z", step=step),
                 Record("w", "afno", "fgsm", 0.1, "lat_rmse", ratio, 0.1, kind="ratio",
                        variable="z", step=step, baseline="random_sign")]
    text = write_report(Results(recs), tmp_path).read_text(encoding="utf-8")
    summary = text[text.index("<h2>Summary</h2>"):text.index("<table")]
    assert "at step 4 under fgsm is 2.5" in summary and "at step 1" not in summary
    assert "a few samples dominate" not in summary  # 2.5 ± 0.1 is a well-measured ratio


def test_headline_flags_a_ratio_that_a_few_samples_carry(tmp_path: Path) -> None:
    recs = [Record("s", "mace", "clean", 0.0, "rmse", 4.5, kind="clean"),
            Record("s", "mace", "random", 0.5, "rmse", 5.0, kind="random"),
            Record("s", "mace", "adv", 0.5, "rmse", 4822.0, kind="adversarial"),
            Record("s", "mace", "adv", 0.5, "rmse", 956.0, 544.0, kind="ratio",
                   baseline="random")]
    text = write_report(Results(recs), tmp_path).read_text(encoding="utf-8")
    summary = text[text.index("<h2>Summary</h2>"):text.index("<table")]
    assert "under adv is 956" in summary and "a few samples dominate it" in summary


def test_readme_verdict_column_is_filled_from_a_summary(tmp_path: Path) -> None:
    from scirobust.report.index import fill_verdict_column, verdict_cells

    summary = tmp_path / "summary.csv"
    summary.write_text(
        "case,paper,status,case_outcome,claim,paper_numbers,our_numbers,criterion,outcome,"
        "detail,mode,wall_time_s,report\n"
        "qcd,000,finished,partly,a,1,2,c,reproduced,,full,683.4,qcd/report.html\n"
        "qcd,000,finished,partly,b,1,2,c,not reproduced,,full,683.4,qcd/report.html\n"
        "sio2,002,failed,,,,,,,MemoryError: boom,full,,\n"
        "poisson,000,missing,,,,,,,,,,\n")
    cells = verdict_cells(summary)
    assert "poisson" not in cells  # never run there: its README cell must stay
    assert cells["qcd"] == "partly (1 of 2 claims reproduced; full, 683 s)"
    assert cells["sio2"].startswith("failed (MemoryError")
    readme = ("text | not a table\n\n| case | paper | verdict |\n|---|---|---|\n"
              "| `qcd` | 000 | — |\n| `poisson` | 000 | — |\n\n| `qcd` | other table |\n")
    filled = fill_verdict_column(readme, cells)
    assert "| `qcd` | 000 | partly (1 of 2 claims reproduced; full, 683 s) |" in filled
    assert "| `poisson` | 000 | — |" in filled  # not in the summary: unchanged
    assert "| `qcd` | other table |" in filled  # a table without the column: unchanged


def test_code_spans_in_notes_and_verdicts_render_as_code() -> None:
    from scirobust.report.html import _prose

    assert _prose("run ``scirobust reproduce x`` or `y` <b>") == (
        "run <code>scirobust reproduce x</code> or <code>y</code> &lt;b&gt;")
    assert _prose("a lone ` backtick") == "a lone ` backtick"


def test_reference_index_links_readmes_and_sums_run_times(tmp_path: Path) -> None:
    import json

    from scirobust.report.index import read_entry, write_index

    for name, seconds, files in (("qcd", 3600.0, ("report.html",)), ("sio2", 1200.5,
                                 ("README.md",)), ("beams", 50.0, ())):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps(
            {"case": name, "quick": False, "seed": 0, "wall_time_s": seconds,
             "status": "finished"}))
        (folder / "verdict.json").write_text(json.dumps({"outcome": "partly", "verdicts": [
            {"claim": "a", "outcome": "reproduced"}, {"claim": "b", "outcome": "partly"},
            {"claim": "c", "outcome": "reproduced"}]}))
        for file in files:
            (folder / file).write_text("x")
    entries = [read_entry(tmp_path / n, n, n.upper(), "000") for n in
               ("qcd", "sio2", "beams", "llm")]
    assert [e.report for e in entries] == ["qcd/report.html", "sio2/README.md", "", ""]
    index = write_index(tmp_path, entries).read_text()
    assert "href='sio2/README.md'" in index and "href='beams" not in index
    assert "3 of 4 cases finished (full); their run times add up to 4850 s (1 h 20 min)" in index
    glance = index[index.index("At a glance"):index.index("Claims, paper vs ours")]
    assert "<a href='#sio2'>sio2</a>" in glance and "<td>2 / 1 / 0</td>" in glance
    assert "<td>missing</td>" in glance  # llm never ran there
    assert "<tr id='sio2'" in index[index.index("Claims, paper vs ours"):]
