#!/usr/bin/env python3
"""Lint for the Grafana dashboards and alert rules in helm/resbm.

Checks (exit status 1 on any failure, prints every check):
  * helm/resbm/dashboards/*.json: valid JSON, lowercase-dash file names, a
    unique uid, tag "resbm", schemaVersion 37, a `datasource` template variable
    of type datasource/prometheus that every panel and query uses
    (${datasource}), every panel has a title and a description, every query
    uses only ResBM metrics the services export (or `up`), and every panel
    title is described in dashboards/README.md.
  * helm/resbm/alerts/resbm-rules.yml: starts with `groups:`, every alert has
    a severity label and summary/description annotations, is described in
    alerts/README.md and is exercised by tests/deploy/alerts_test.yml.
  * With promtool on PATH: every dashboard query (Grafana variables replaced
    by sample values) parses (`promtool check rules` on a scratch file),
    the rule file checks and its unit tests pass.

Usage: python3 tests/deploy/dashboards_test.py [--repo DIR]
Requires Python 3.8+ and PyYAML.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

# Metrics exported by services/stage_worker/stage_metrics.cc and
# services/coordinator/coordinator_metrics.cc (histograms with their series).
KNOWN = {
    "resbm_transport_bytes_total", "resbm_transport_payload_bytes_total",
    "resbm_transport_bf16_reference_bytes_total", "resbm_transport_frames_total",
    "resbm_transport_compression_ratio", "resbm_stage_wait_seconds_total",
    "resbm_transport_queue_frames", "resbm_transport_frame_errors_total", "resbm_stage_steps_total",
    "resbm_stage_info", "resbm_device_memory_bytes",
    "resbm_jobs", "resbm_workers", "resbm_tokens_per_second", "resbm_train_loss", "resbm_val_loss",
    "resbm_steps_total", "resbm_recoveries_total", "resbm_job_resumes_total",
    "resbm_checkpoint_bytes_total", "resbm_step_waited_on_stage",
    "resbm_all_reduce_bytes_total", "resbm_all_reduce_seconds_total",
    "resbm_replica_refusals_total",
}
for h in ("resbm_stage_compute_seconds", "resbm_step_seconds", "resbm_checkpoint_seconds"):
    KNOWN |= {h + "_bucket", h + "_sum", h + "_count"}

# Sample values for Grafana variables when checking that queries parse.
VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$stage": ".*",
        "$configured_ratio": "128", "$total_steps": "300"}


class Checker:
    def __init__(self):
        self.passed = self.failures = 0

    def check(self, ok, what):
        print("  %s %s" % ("ok  " if ok else "FAIL", what))
        if ok:
            self.passed += 1
        else:
            self.failures += 1


def panels_of(dash):
    for p in dash.get("panels", []):
        yield p
        for sub in p.get("panels", []):  # collapsed rows
            yield sub


def check_dashboards(c, ddir):
    with open(os.path.join(ddir, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    files = sorted(n for n in os.listdir(ddir) if n.endswith(".json"))
    c.check(len(files) >= 4, "dashboards present: %s" % files)
    uids, exprs = {}, []
    for name in files:
        print("== dashboards/%s" % name)
        c.check(re.fullmatch(r"[a-z0-9-]+\.json", name) is not None and len(name) < 45,
                "file name lowercase letters, digits, dashes")
        try:
            with open(os.path.join(ddir, name), encoding="utf-8") as f:
                d = json.load(f)
        except ValueError as e:
            c.check(False, "valid JSON: %s" % e)
            continue
        uid = d.get("uid") or ""
        c.check(bool(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid)) and uid not in uids, "uid %r set and unique" % uid)
        uids[uid] = name
        c.check("resbm" in d.get("tags", []), "tagged resbm")
        c.check(d.get("schemaVersion") == 37, "schemaVersion 37")
        c.check(bool(d.get("title")) and bool(d.get("description")), "dashboard title and description")
        c.check(d.get("id") is None, "no instance-specific id")
        tvars = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
        ds = tvars.get("datasource", {})
        c.check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
                "template variable `datasource` of type prometheus")
        for v in tvars.values():
            if "datasource" in v and v["type"] == "query":
                c.check(v["datasource"].get("uid") == "${datasource}", "variable %s uses ${datasource}" % v["name"])
        c.check(name[:-5] in readme, "README.md describes %s" % name)
        for p in panels_of(d):
            title = p.get("title", "")
            c.check(bool(title.strip()) and bool(p.get("description", "").strip()),
                    "panel %r has title and description" % title)
            if p.get("type") == "row":
                continue
            c.check(title.replace("$stage", "").strip(": ") in readme or title in readme,
                    "README.md describes panel %r" % title)
            c.check(p.get("datasource", {}).get("uid") == "${datasource}", "panel %r uses ${datasource}" % title)
            tg = p.get("targets", [])
            c.check(bool(tg) and all(t.get("datasource", {}).get("uid") == "${datasource}" and t.get("expr")
                                     for t in tg), "panel %r queries use ${datasource}" % title)
            for t in tg:
                expr = t.get("expr", "")
                metrics = set(re.findall(r"\bresbm_[a-z0-9_]+", expr))
                unknown = sorted(metrics - KNOWN)
                c.check(not unknown, "panel %r %s: known metrics only %s" % (title, t.get("refId"), unknown or ""))
                used = {m for m in re.findall(r"\$[a-z_]+", expr)}
                undefined = sorted(u for u in used if not u.startswith("$__") and u[1:] not in tvars)
                c.check(not undefined, "panel %r %s: variables defined %s" % (title, t.get("refId"), undefined or ""))
                exprs.append(("%s: %s/%s" % (name, title, t.get("refId")), expr))
    return exprs


def check_rules(c, repo):
    path = os.path.join(repo, "helm", "resbm", "alerts", "resbm-rules.yml")
    print("== alerts/resbm-rules.yml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    c.check(text.startswith("groups:"), "starts with groups:")
    doc = yaml.safe_load(text)
    with open(os.path.join(repo, "helm", "resbm", "alerts", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    with open(os.path.join(repo, "tests", "deploy", "alerts_test.yml"), encoding="utf-8") as f:
        tests = f.read()
    for g in doc["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            a = r["alert"]
            c.check(r.get("labels", {}).get("severity") in ("critical", "warning", "info"), "%s has severity" % a)
            ann = r.get("annotations", {})
            c.check(bool(ann.get("summary")) and bool(ann.get("description")), "%s has summary and description" % a)
            c.check(a in readme, "alerts/README.md describes %s" % a)
            c.check(re.search(r"alertname: %s\n(\s+exp_alerts:\n\s+- )" % a, tests) is not None,
                    "alerts_test.yml has a firing case for %s" % a)
    c.check("exp_alerts: []" in tests, "alerts_test.yml has not-firing cases")


def run_promtool(c, repo, exprs):
    promtool = shutil.which("promtool")
    if not promtool:
        print("== promtool not on PATH: skipping query parsing and rule unit tests")
        return
    print("== promtool")
    rules = []
    for i, (where, expr) in enumerate(exprs):
        for k in sorted(VARS, key=len, reverse=True):
            expr = expr.replace(k, VARS[k])
        rules.append({"record": "dashboard_query_%d" % i, "expr": expr})
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "queries.yml")
        with open(p, "w", encoding="utf-8") as f:
            yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, f)
        r = subprocess.run([promtool, "check", "rules", p], capture_output=True, text=True)
        if r.returncode:
            print(r.stdout + r.stderr)
            for i, (where, _) in enumerate(exprs):
                if "dashboard_query_%d\"" % i in r.stdout + r.stderr or "rule %d:" % (i + 1) in r.stdout + r.stderr:
                    print("     -> %s" % where)
        c.check(r.returncode == 0, "all %d dashboard queries parse" % len(exprs))
    rules_file = os.path.join(repo, "helm", "resbm", "alerts", "resbm-rules.yml")
    r = subprocess.run([promtool, "check", "rules", rules_file], capture_output=True, text=True)
    c.check(r.returncode == 0, "promtool check rules resbm-rules.yml %s" % (r.stdout + r.stderr).strip().splitlines()[-1:])
    r = subprocess.run([promtool, "test", "rules", os.path.join(repo, "tests", "deploy", "alerts_test.yml")],
                       capture_output=True, text=True)
    if r.returncode:
        print(r.stdout + r.stderr)
    c.check(r.returncode == 0, "promtool test rules tests/deploy/alerts_test.yml")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    args = ap.parse_args()
    c = Checker()
    exprs = check_dashboards(c, os.path.join(args.repo, "helm", "resbm", "dashboards"))
    check_rules(c, args.repo)
    run_promtool(c, args.repo, exprs)
    print("\n%d checks passed, %d failed" % (c.passed, c.failures))
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
