"""Step discovery: built-ins as data, plugins through entry points, broken ones reported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopml.core.errors import PluginError, SpecError
from loopml.core.spec import parse_spec
from loopml.engine import check_spec
from loopml.steps.registry import BUILTIN_STEPS, StepRegistry


def _install_plugin(site: Path, name: str, entry_points: str, module_source: str) -> None:
    """A real installed distribution: a module plus a dist-info with entry_points.txt."""
    (site / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[loopml.steps]\n{entry_points}\n")


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(
        site,
        "good_plugin",
        "greet = good_plugin:greet",
        """
        from loopml.steps import StepParams, step

        class Greeting(StepParams):
            who: str

        @step("greet", params=Greeting)
        def greet(context, params):
            '''Say hello into the reports.'''
            context.reports["greeting"] = f"hello {params.who}"
    """,
    )
    _install_plugin(
        site,
        "broken_plugin",
        "shatter = broken_plugin:shatter",
        "import a_module_that_is_not_installed\n",
    )
    _install_plugin(site, "sneaky_plugin", "train_model = sneaky_plugin:anything", "anything = 1\n")
    monkeypatch.syspath_prepend(str(site))
    yield site


SPEC = """
pipeline:
  - MLSteps:
      - greet: {{who: world}}
      - {step}: {{}}
experiment_config: {{experiment_name: e, model_name: m, main_metric: F1,
                    problem_type: classification, target: y}}
"""


def test_plugins_register_without_touching_the_engine(plugin_site: Path) -> None:
    registry = StepRegistry.with_builtins()
    assert {"greet", "shatter"} <= set(registry.names())
    assert registry.origins["greet"] == "good_plugin"
    definition = registry.get("greet")
    assert definition.summary == "Say hello into the reports."
    with pytest.raises(SpecError) as caught:
        check_spec(parse_spec(SPEC.format(step="greet").replace("world", "1")), registry)
    assert caught.value.issues[0].path == "pipeline[0].MLSteps[0].greet.who"


def test_a_broken_plugin_is_reported_not_fatal(plugin_site: Path) -> None:
    registry = StepRegistry.with_builtins()
    with pytest.raises(PluginError, match="a_module_that_is_not_installed"):
        registry.get("shatter")
    assert "shatter" in registry.problems()
    assert "greet" in registry.load_all()  # the others still load
    with pytest.raises(SpecError) as caught:
        check_spec(parse_spec(SPEC.format(step="shatter")), registry)
    (issue,) = caught.value.issues
    assert issue.path == "pipeline[0].MLSteps[1].shatter"
    assert "could not be loaded" in issue.message and "broken_plugin" in issue.message


def test_a_plugin_cannot_replace_a_builtin(plugin_site: Path) -> None:
    registry = StepRegistry.with_builtins()
    assert registry.origins["train_model"] == "loopml"
    assert "tries to replace the built-in step" in registry.problems()["train_model"]


def test_unknown_step_gets_a_suggestion() -> None:
    with pytest.raises(SpecError) as caught:
        check_spec(
            parse_spec(SPEC.format(step="regster_model")), StepRegistry.with_builtins(plugins=False)
        )
    issues = {issue.path: issue for issue in caught.value.issues}
    assert issues["pipeline[0].MLSteps[1].regster_model"].suggestion == "register_model"
    assert "greet" in issues["pipeline[0].MLSteps[0].greet"].render()


def test_builtins_load_lazily() -> None:
    """Validating a spec imports no heavy training or MLflow code; listing steps neither."""
    fixture = Path(__file__).parents[1] / "fixtures" / "seed_kaggle_spec.json"
    probe = textwrap.dedent(f"""
        import sys
        from loopml.core.spec import read_spec_file
        from loopml.engine import check_spec
        from loopml.steps.registry import StepRegistry
        check_spec(read_spec_file(__import__("pathlib").Path({str(fixture)!r})),
                   StepRegistry.with_builtins())
        heavy = sorted(m for m in ("sklearn", "lightgbm", "xgboost", "mlflow", "kaggle", "optuna")
                       if m in sys.modules)
        print(",".join(heavy))
    """)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_every_builtin_location_resolves() -> None:
    registry = StepRegistry.with_builtins(plugins=False)
    for name in BUILTIN_STEPS:
        assert registry.get(name).name == name
