"""Reports: summary tables, standard figures and a self-contained ``report.html``.

    from scirobust.report import write_report, summary_rows
    results.save(out)
    write_report(results, out)          # out/figures/*.png|svg and out/report.html

`COLORS` is the fixed Okabe–Ito palette (clean black, random controls blue, gradient attacks
vermillion/orange/reddish purple) that cases use for their own figures too.
"""

from scirobust.report.case_files import save_case_figure, write_case_table
from scirobust.report.figures import (
    COLORS,
    attack_kinds,
    attack_styles,
    plot_metric_vs_eps,
    plot_ratio,
    save_figure,
)
from scirobust.report.html import format_value, summary_rows, write_report

__all__ = [
    "COLORS",
    "attack_kinds",
    "attack_styles",
    "format_value",
    "plot_metric_vs_eps",
    "plot_ratio",
    "save_case_figure",
    "save_figure",
    "summary_rows",
    "write_case_table",
    "write_report",
]
