"""The case skeleton: registry install hints, Verdict, finish."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from scirobust import ConfigError, Record, Results
from scirobust.cases import CASE_EXTRAS, CASE_MODULES, Verdict, finish, get_case, outcome

EXTRA_PACKAGE = {"sio2": "ase", "weather": "torch_harmonics", "digits": "sklearn",
                 "methane": "ase", "llm": "transformers", "beams": "sionna",
                 "silicon": "chgnet"}


@pytest.mark.parametrize("case", sorted(CASE_EXTRAS))
def test_a_missing_extra_names_the_install_command(case: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip(EXTRA_PACKAGE[case])
    # Hide the extra (None in sys.modules makes its import fail) and forget the case module,
    # so the registry imports it afresh as on a machine without the extra.
    package = EXTRA_PACKAGE[case]
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)  # submodules too: already imported ones
    monkeypatch.setitem(sys.modules, package, None)
    # Forget the case and the domain modules it imports the extra through (an earlier test
    # may have imported them while the extra was visible).
    for name in [n for n in sys.modules if n == CASE_MODULES[case]
                 or n.startswith(("scirobust.atomistic", "scirobust.weather"))]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ConfigError) as info:
        get_case(case)
    message = str(info.value)
    assert EXTRA_PACKAGE[case] in message
    assert f"pip install 'scirobust[{CASE_EXTRAS[case]}]'" in message


def test_unknown_case_lists_the_cases() -> None:
    with pytest.raises(ConfigError, match=r"Available: .*poisson"):
        get_case("poison")


def test_verdict_checks_its_outcome_and_finish_writes_it_first(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outcome"):
        Verdict("claim", "criterion", "maybe")  # type: ignore[arg-type]
    verdict = Verdict("Adversarial error far above random.", "ratio >= 2 at every lead",
                      "partly", "ratio 2.7 for z, 1.6 for u")
    assert verdict.text().startswith("Verdict: PARTLY. Paper: Adversarial error")
    results = Results([Record("c", "m", "clean", 0.0, "rmse", 1.0, kind="clean"),
                       Record("c", "m", "fgsm", 0.1, "rmse", 2.0, kind="adversarial")],
                      {"notes": ["A stand-in model."]})
    out = finish(results, tmp_path, title="A case", summary=[["a", "b"]], verdicts=[verdict])
    assert out.summary == [["a", "b"]] and out.report == tmp_path / "report.html"
    saved = json.loads((tmp_path / "results.json").read_text())["metadata"]
    assert saved["verdicts"] == [verdict.as_dict()]
    html = out.report.read_text(encoding="utf-8")
    assert html.index("Verdict: partly.") < html.index("A stand-in model.")


def test_outcome_of_several_checks() -> None:
    assert outcome([True, True]) == "reproduced"
    assert outcome([True, False]) == "partly"
    assert outcome([False, False]) == outcome([]) == "not reproduced"
