#!/usr/bin/python3
"""Unit-tests deploy/prometheus/katsubushi-rules.yml with `promtool test rules`.

The cases live in katsubushi-rules-cases.yml; this script turns them into
promtool's test file (one test group per case), filling in each expected
alert's severity and annotations from the rule itself, and checks that every
alert has a case where it fires and one where it does not.

Usage: run_rules_test.py [PROMTOOL]   (default /usr/bin/promtool)
"""

import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RULES = os.path.join(ROOT, "deploy", "prometheus", "katsubushi-rules.yml")
CASES = os.path.join(HERE, "katsubushi-rules-cases.yml")


def load_alerts():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule}


def expected_alert(rule, labels):
    exp_labels = dict(labels)
    exp_labels.update(rule.get("labels", {}))
    # The annotations use only $labels.instance (the rules file says so).
    annotations = {k: v.replace("{{ $labels.instance }}", labels["instance"])
                   for k, v in rule.get("annotations", {}).items()}
    assert "{{" not in "".join(annotations.values()), f"{rule['alert']}: template the test cannot fill"
    return {"exp_labels": exp_labels, "exp_annotations": annotations}


def build_tests(alerts, cases):
    default_labels = cases["defaults"]["labels"]
    groups, fires, quiet = [], set(), set()
    for case in cases["cases"]:
        name = case["alert"]
        if name not in alerts:
            sys.exit(f"case '{case['name']}' names an unknown alert {name}")
        (fires if case["firing"] else quiet).add(name)
        groups.append({
            "name": f"{name}: {case['name']}",
            "interval": case["interval"],
            "input_series": [{"series": s.replace("LABELS", default_labels), "values": v}
                             for s, v in case["series"].items()],
            "alert_rule_test": [{
                "eval_time": case["eval"],
                "alertname": name,
                "exp_alerts": [expected_alert(alerts[name], labels) for labels in case["firing"]],
            }],
        })
    missing = [f"{a} (no case where it fires)" for a in alerts if a not in fires]
    missing += [f"{a} (no case where it stays quiet)" for a in alerts if a not in quiet]
    if missing:
        sys.exit("rules without both kinds of case:\n  " + "\n  ".join(missing))
    return {"rule_files": [RULES], "evaluation_interval": "15s", "tests": groups}


def main():
    promtool = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/promtool"
    with open(CASES) as f:
        cases = yaml.safe_load(f)
    tests = build_tests(load_alerts(), cases)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "katsubushi-rules.test.yml")
        with open(path, "w") as f:
            yaml.safe_dump(tests, f, sort_keys=False)
        run = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True,
                             timeout=120)
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    print(f"{len(tests['tests'])} cases for {len(load_alerts())} alerts")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
