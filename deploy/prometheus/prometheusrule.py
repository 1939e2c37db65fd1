"""Writes deploy/kubernetes/base/prometheusrule.yaml: the rule groups of orderflow.rules.yml
wrapped in a Prometheus Operator PrometheusRule, so the two never disagree.

    python deploy/prometheus/prometheusrule.py            # rewrite the PrometheusRule
    python deploy/prometheus/prometheusrule.py --check    # exit 1 if it is out of date

Edit orderflow.rules.yml, then run this; tests/deploy fails when the committed file differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "orderflow.rules.yml"
OUTPUT = HERE.parent / "kubernetes" / "base" / "prometheusrule.yaml"

HEADER = """\
# Written by deploy/prometheus/prometheusrule.py from deploy/prometheus/orderflow.rules.yml:
# edit that file and re-run the script, never this one.
# Your Prometheus may select rules by label (kube-prometheus-stack: `release: <helm release>`):
# add it in your overlay.
"""


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as literal blocks, as a person writes them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _str)


def render() -> str:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "orderflow",
            "labels": {
                "app.kubernetes.io/name": "orderflow",
                "app.kubernetes.io/instance": "orderflow",
                "app.kubernetes.io/component": "consumer",
            },
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(rule, Dumper=_BlockStyleDumper, sort_keys=False, width=1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python deploy/prometheus/prometheusrule.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
