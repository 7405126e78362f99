"""benchmarks/report.py on a small synthetic grid whose numbers are known by hand.

The grid: 2 datasets (breastmnist, which has a published ceiling, and
chestmnist, which has none), 3 methods (random, coreset, scal), 5 seeds,
4 cycles. ACC is ``base[method, dataset] + SHAPE[cycle] + 0.01 * seed +
bump[method, dataset][seed]`` and AUC is ACC + 0.2, so every mean, std,
area, rank and win count below follows from those constants.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import report

METHODS = ("random", "coreset", "scal")
DATASETS = ("breastmnist", "chestmnist")
SEEDS = range(5)
N_LABELED = {"breastmnist": (100, 200, 400, 800), "chestmnist": (50, 100, 150, 200)}
SHAPE = (0.0, 0.10, 0.15, 0.16)  # the curve's rise over the 4 cycles
BASE = {
    # breastmnist: coreset and scal tie (rank 1.5 each), random last.
    ("random", "breastmnist"): 0.50, ("coreset", "breastmnist"): 0.60,
    ("scal", "breastmnist"): 0.60,
    # chestmnist: coreset > scal > random, scal beating random on 3 seeds of 5.
    ("random", "chestmnist"): 0.50, ("coreset", "chestmnist"): 0.55,
    ("scal", "chestmnist"): 0.50,
}
BUMP = {("scal", "chestmnist"): (0.02, -0.01, 0.03, -0.02, 0.01)}


def _acc(method, dataset, seed, cycle):
    bump = BUMP.get((method, dataset), (0.0,) * 5)[seed]
    return BASE[method, dataset] + SHAPE[cycle - 1] + 0.01 * seed + bump


def _grid_rows():
    rows = []
    for dataset in DATASETS:
        for method in METHODS:
            for seed in SEEDS:
                for cycle in range(1, 5):
                    acc = _acc(method, dataset, seed, cycle)
                    rows.append({
                        "method": method, "dataset": dataset, "seed": seed, "cycle": cycle,
                        "n_labeled": N_LABELED[dataset][cycle - 1], "acc": acc,
                        "auc": acc + 0.2, "train_seconds": 10.0 if method != "scal" else 30.0,
                        "query_seconds": 0.0 if cycle == 4 else 2.0,
                    })
    return pd.DataFrame(rows)


@pytest.fixture
def grid():
    return _grid_rows()


@pytest.fixture
def results_csv(tmp_path, grid):
    path = tmp_path / "results.csv"
    grid.to_csv(path, index=False)
    return path


@pytest.fixture
def written(tmp_path, results_csv):
    out = tmp_path / "report"
    paths = report.write_report(results_csv, out, command="python benchmarks/run_all.py --x 1")
    return paths, paths["report"].read_text(encoding="utf-8")


def _section(markdown, dataset):
    """The markdown of one dataset's section."""
    start = markdown.index(f"## {dataset}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end != -1 else None]


def _row(markdown, first_cell):
    """The cells of the first table row starting with ``| first_cell |``."""
    for line in markdown.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row for {first_cell!r}")


# Hand area of SHAPE against breastmnist's budgets (100, 200, 400, 800):
# ((0 + .10)/2 * 100 + (.10 + .15)/2 * 200 + (.15 + .16)/2 * 400) / 700 = 92 / 700.
BREAST_SHAPE_AREA = 92 / 700
# chestmnist's (50, 100, 150, 200): ((0 + .1)/2 + (.1 + .15)/2 + (.15 + .16)/2) * 50 / 150.
CHEST_SHAPE_AREA = (0.05 + 0.125 + 0.155) / 3


def test_budget_curve_area_by_hand():
    assert report.budget_curve_area(N_LABELED["breastmnist"], SHAPE) == pytest.approx(
        BREAST_SHAPE_AREA, abs=1e-12)
    assert report.budget_curve_area([10, 20, 30], [0.5, 0.7, 0.7]) == pytest.approx(0.65)
    assert report.budget_curve_area([10], [0.4]) == 0.4
    assert np.isnan(report.budget_curve_area([10, 20], [0.4, np.nan]))
    with pytest.raises(ValueError, match="strictly increasing"):
        report.budget_curve_area([20, 10], [0.4, 0.5])


def test_cell_areas_and_summary_are_exact(grid):
    areas = report.cell_areas(report.validate_results(grid))
    assert len(areas) == 2 * 3 * 5 and areas["complete"].all()
    one = areas.set_index(["dataset", "method", "seed"]).loc[("breastmnist", "random", 3)]
    # The offsets are constant along the curve, so they add to the area.
    assert one["acc_area"] == pytest.approx(0.50 + 0.03 + BREAST_SHAPE_AREA, abs=1e-12)
    assert one["auc_area"] == pytest.approx(0.70 + 0.03 + BREAST_SHAPE_AREA, abs=1e-12)

    summary = report.area_summary(areas)
    s = summary.loc[("breastmnist", "random")]
    assert s["acc_area_mean"] == pytest.approx(0.50 + 0.02 + BREAST_SHAPE_AREA, abs=1e-12)
    assert s["acc_area_std"] == pytest.approx(0.01 * np.sqrt(2.5), abs=1e-12)  # std of 0..4, ddof 1
    assert s["acc_area_n"] == 5
    ranks = summary["rank"]
    assert ranks[("breastmnist", "coreset")] == 1.5  # tie with scal, averaged
    assert ranks[("breastmnist", "scal")] == 1.5
    assert ranks[("breastmnist", "random")] == 3
    assert ranks[("chestmnist", "coreset")] == 1
    assert ranks[("chestmnist", "scal")] == 2
    assert ranks[("chestmnist", "random")] == 3


def test_paired_comparison_counts_and_pvalues(grid):
    paired = report.paired_vs_baseline(report.cell_areas(report.validate_results(grid)))
    paired = paired.set_index(["dataset", "method"])
    coreset = paired.loc[("breastmnist", "coreset")]
    assert (coreset["n_pairs"], coreset["wins"], coreset["ties"], coreset["losses"]) == (5, 5, 0, 0)
    assert coreset["mean_diff"] == pytest.approx(0.10, abs=1e-12)
    assert coreset["sign_p"] == pytest.approx(0.0625)  # 2 * 0.5 ** 5: the floor at 5 seeds
    assert coreset["wilcoxon_p"] == pytest.approx(0.0625)
    scal = paired.loc[("chestmnist", "scal")]
    assert (scal["wins"], scal["ties"], scal["losses"]) == (3, 0, 2)
    assert scal["mean_diff"] == pytest.approx(np.mean(BUMP["scal", "chestmnist"]), abs=1e-12)
    assert scal["sign_p"] == pytest.approx(1.0)
    assert report.smallest_sign_p(5) == pytest.approx(0.0625)


def test_report_tables_show_the_known_numbers(written):
    _, md = written
    assert md.startswith("# skal benchmark report")
    assert "```bash\npython benchmarks/run_all.py --x 1\n```" in md
    breast = _section(md, "breastmnist")
    # ACC of random at 100 labeled: 0.50 + 0.01 * seed -> mean 0.520, std 0.0158.
    assert _row(breast, "random")[1] == "0.520 ± 0.016"
    # ACC at 800 labeled: 0.50 + 0.16 + 0.02 = 0.680.
    assert _row(breast, "random")[4] == "0.680 ± 0.016"
    area_rows = [line for line in breast.splitlines() if line.startswith("| random |")]
    assert len(area_rows) == 4  # ACC table, AUC table, area table, wall time
    area = [c.strip() for c in area_rows[2].strip("|").split("|")]
    assert area[1] == f"{0.52 + BREAST_SHAPE_AREA:.3f} ± 0.016"  # 0.651
    assert area[2] == f"{0.72 + BREAST_SHAPE_AREA:.3f} ± 0.016"
    assert area[3] == "3"
    scal_area = [line for line in breast.splitlines() if line.startswith("| scal |")][2]
    assert scal_area.rstrip().endswith("| 1.5 |")
    # Ceiling row for a dataset with a published ceiling (ACC 0.863, AUC 0.901).
    ceiling = _row(breast, "*full-data ResNet-18 (MedMNIST v2)*")
    assert ceiling[1:3] == ["ACC 0.863", "AUC 0.901"]
    chest = _section(md, "chestmnist")
    assert _row(chest, "*full-data ResNet-18 (MedMNIST v2)*")[1:3] == ["n/a", "n/a"]
    chest_random_area = [line for line in chest.splitlines() if line.startswith("| random |")][2]
    assert f"{0.52 + CHEST_SHAPE_AREA:.3f} ± 0.016" in chest_random_area
    # Paired rows: wins / ties / losses and the p-values.
    coreset_pair = [line for line in breast.splitlines() if line.startswith("| coreset | 5 |")]
    assert coreset_pair and "5 / 0 / 0" in coreset_pair[0] and "+0.100" in coreset_pair[0]
    assert "0.0625" in coreset_pair[0]
    assert "3 / 0 / 2" in _section(md, "chestmnist")
    assert "0.0625" in md and "p < 0.05" in md
    # Wall time: scal trains 30 s a cycle; the query mean leaves out the last cycle's 0.
    wall = md[md.index("## Wall time per method"):]
    assert _row(wall, "scal")[1:4] == ["40", "30.00", "2.00"]
    assert _row(wall, "random")[1:4] == ["40", "10.00", "2.00"]
    assert "## Failures\n\nNone recorded." in md


def test_pngs_are_written(written):
    paths, md = written
    for dataset in DATASETS:
        png = paths[f"curves_{dataset}"]
        assert png.name == f"curves_{dataset}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 10_000
        assert f"](curves_{dataset}.png)" in md
    assert paths["report"].name == "report.md"


def test_duplicated_rows_keep_the_last(grid):
    stale = grid[(grid["method"] == "random") & (grid["dataset"] == "breastmnist")
                 & (grid["seed"] == 0)].assign(acc=0.0, auc=0.0)
    results = report.validate_results(pd.concat([stale, grid], ignore_index=True))
    assert len(results) == len(grid)
    assert results.attrs["duplicates_dropped"] == 4
    assert results["acc"].min() > 0.4  # the stale zeros were replaced
    rerun = pd.concat([grid, stale], ignore_index=True)  # now the zeros come last
    results = report.validate_results(rerun)
    cell = results[(results["method"] == "random") & (results["dataset"] == "breastmnist")
                   & (results["seed"] == 0)]
    assert (cell["acc"] == 0.0).all()
    assert "4 duplicated row(s)" in report.render_report(results)


def test_missing_columns_and_empty_files_raise(tmp_path, grid):
    path = tmp_path / "bad.csv"
    grid.drop(columns=["auc", "query_seconds"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="auc, query_seconds"):
        report.load_results(path)
    path.write_text("")
    with pytest.raises(ValueError, match="empty"):
        report.load_results(path)
    grid.iloc[:0].to_csv(path, index=False)
    with pytest.raises(ValueError, match="no rows"):
        report.load_results(path)


def test_failures_from_argument_and_file(tmp_path, results_csv):
    pd.DataFrame([{"method": "scal", "dataset": "chestmnist", "seed": 4,
                   "error": "Traceback (most recent call last):\n  ...\nMemoryError: pool"}]
                 ).to_csv(results_csv.with_name("failures.csv"), index=False)
    paths = report.write_report(results_csv, tmp_path / "out", failures=[
        {"method": "coreset", "dataset": "breastmnist", "seed": 1, "error": "RuntimeError: boom"}])
    md = paths["report"].read_text(encoding="utf-8")
    failures = md[md.index("## Failures"):]
    assert _row(failures, "coreset") == ["coreset", "breastmnist", "1", "RuntimeError: boom"]
    assert _row(failures, "scal") == ["scal", "chestmnist", "4", "MemoryError: pool"]


def test_incomplete_and_missing_cells_are_reported(tmp_path, grid):
    drop = ((grid["method"] == "scal") & (grid["dataset"] == "chestmnist") & (grid["seed"] == 3)
            & (grid["cycle"] == 4))
    gone = (grid["method"] == "coreset") & (grid["dataset"] == "breastmnist") & (grid["seed"] == 2)
    grid = grid[~drop & ~gone]
    grid.loc[(grid["method"] == "random") & (grid["dataset"] == "chestmnist")
             & (grid["seed"] == 0) & (grid["cycle"] == 2), "acc"] = np.nan
    path = tmp_path / "results.csv"
    grid.to_csv(path, index=False)
    md = report.write_report(path, tmp_path / "out")["report"].read_text(encoding="utf-8")
    chest, breast = _section(md, "chestmnist"), _section(md, "breastmnist")
    assert "scal seed 3 (3 of 4 cycles)" in chest
    assert "**Missing cells** (no rows at all): coreset seed 2." in breast
    assert "**Failed evaluations**" in chest and "random seed 0" in chest
    # The incomplete cell still counts at the budgets it reached: 5 seeds at 150, 4 at 200.
    scal_acc = _row(chest, "scal")
    assert "(n=" not in scal_acc[3] and scal_acc[4].endswith("(n=4)")
    # ... but not in the area, so scal has 4 pairs with random, which has lost seed 0: 3 pairs.
    pair = [line for line in chest.splitlines() if line.startswith("| scal | 3 |")]
    assert pair and "too few seeds" in pair[0]
    coreset_pair = [line for line in breast.splitlines() if line.startswith("| coreset | 4 |")]
    assert coreset_pair and "too few seeds" in coreset_pair[0]


def test_main_command_line(tmp_path, results_csv, capsys):
    out = tmp_path / "cli"
    assert report.main([str(results_csv), "--out", str(out), "--command", "make bench"]) == 0
    assert (out / "report.md").read_text(encoding="utf-8").count("make bench") == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "curves_breastmnist.png", "curves_chestmnist.png", "differences_breastmnist.png",
        "differences_chestmnist.png", "penalty_acc.png", "report.md"]
    assert "report.md" in capsys.readouterr().out


def test_study_table_known_means_and_stds(tmp_path, capsys):
    # 2 methods x 2 trials x 2 cycles on one dataset, in the old columns (no test_loss).
    rows = ["method,dataset,seed,cycle,n_labeled,acc,auc,train_seconds,query_seconds"]
    values = {("random", 0): [(0.5, 0.6), (0.7, 0.8)], ("random", 1): [(0.7, 0.8), (0.9, 1.0)],
              ("coreset", 0): [(0.6, 0.7), (0.8, 0.9)], ("coreset", 1): [(0.6, 0.7), (0.6, 0.5)]}
    for (method, seed), curve in values.items():
        for cycle, (acc, auc) in enumerate(curve, start=1):
            rows.append(f"{method},breastmnist,{seed},{cycle},{10 * cycle},{acc},{auc},1.0,0.0")
    path = tmp_path / "results.csv"
    path.write_text("\n".join(rows) + "\n")
    assert report.main([str(path), "--study-table"]) == 0
    out = capsys.readouterr().out
    # Two values d apart have std d / sqrt(2) (ddof=1): 0.2 -> 0.1414, 0.4 -> 0.2828.
    assert "## breastmnist (mean ± std over 2 trial(s))" in out
    assert "| method | 1 (10) | 2 (20) |" in out
    acc, auc = out.split("**AUC**")
    assert "| random | 0.6000 ± 0.1414 | 0.8000 ± 0.1414 |" in acc
    assert "| coreset | 0.6000 ± 0.0000 | 0.7000 ± 0.1414 |" in acc
    assert "| random | 0.7000 ± 0.1414 | 0.9000 ± 0.1414 |" in auc
    assert "| coreset | 0.7000 ± 0.0000 | 0.7000 ± 0.2828 |" in auc
    assert acc.index("| random |") < acc.index("| coreset |")  # the baseline first
    # A trial missing a cycle is flagged with its count.
    path.write_text("\n".join(rows[:-1]) + "\n")
    assert report.main([str(path), "--study-table"]) == 0
    assert "| coreset | 0.6000 ± 0.0000 | 0.8000 (n=1) |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        report.main([str(path)])
    assert "--out is required" in capsys.readouterr().err
