"""Hostile spec texts shared by the spec and jobs API tests."""

from __future__ import annotations


def yaml_alias_bomb(levels: int = 9) -> str:
    """A billion-laughs YAML spec: each level aliases the previous one nine times."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    body = "\n".join(f"    {line}" for line in lines)
    return (
        "experiment_config:\n  experiment_name: e\n  model_name: m\n  target: y\n"
        f"  problem_type: classification\n  main_metric: F1\n  bomb:\n{body}\n"
        "pipeline:\n  - MLSteps:\n      - load_data_from_file:\n          path: /d/t.csv\n"
        f"          read_options: {{x: *l{levels - 1}}}\n"
    )
