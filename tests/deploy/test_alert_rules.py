"""The alert rules: promtool accepts them, and their unit tests (fire where they should, stay
silent where they should not, with the annotations an on-call engineer reads) pass."""

from __future__ import annotations

from deploy_support import DEPLOY, run, tool

RULES = DEPLOY / "prometheus" / "orderflow.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "orderflow.rules.test.yml"


def test_promtool_check_rules() -> None:
    result = run([tool("promtool"), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules() -> None:
    result = run([tool("promtool"), "test", "rules", str(RULE_TESTS)], cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_and_has_a_runbook_entry() -> None:
    import yaml

    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load(RULE_TESTS.read_text())
    fired = {case["alertname"] for t in tests["tests"] for case in t.get("alert_rule_test", [])
             if case["exp_alerts"]}
    assert alerts == fired, f"alerts never seen firing in a unit test: {sorted(alerts - fired)}"
    runbook = (DEPLOY.parent / "docs" / "runbook.md").read_text()
    for alert in alerts:
        assert f"## {alert}" in runbook, f"docs/runbook.md has no section for {alert}"
