#!/usr/bin/env python3
"""Render/consistency check for the Kubernetes deployment files.

Checks (exit status 1 on any failure, prints every check):
  (a) k8s/base/*.yaml (plain manifests) and k8s/testing/: kinds,
      names, ports, gRPC probes, selectors vs pod labels, headless Service vs
      StatefulSet serviceName, PVC access modes, volumes, security context,
      the job ConfigMap vs configs/default.json.
  (b) helm/resbm: renders the chart with a minimal Go-template engine (below)
      for several value sets (defaults; GPU + ServiceMonitor + PrometheusRule
      + a dashboard; another release name with an existing claim and spares;
      tls.enabled) and runs the same checks, including transport security:
      plaintext (the default) must be asked for explicitly everywhere
      (--plaintext, RESBM_PLAINTEXT=1, gRPC probes); with TLS every service
      gets --tls-* files from read-only Secret mounts, the coordinator its
      --auth-tokens-file, the submit Job the CA and a token, and the probes
      are tcpSocket. The defaults rendering must be equivalent to k8s/
      (ignoring Helm-only metadata). values.yaml: every key commented.

No helm binary is needed. The engine supports ONLY this subset of Helm's
template language -- keep helm/resbm/templates within it (or extend this):
  * actions {{ }}, trim markers {{- -}}, comments {{/* */}}
  * define / include, if / else if / else, with / else, range (over a list or
    map, with "$k, $v :=" or "$v :=" or plain dot) / else, end
  * variables: $ (root), $name := pipeline, $name.field
  * fields: .Values.*, .Release.{Name,Namespace,Service}, .Chart.*,
    .Files.Get "path", .Files.Glob "pattern"
  * pipelines with "|" and parenthesised sub-pipelines; string/int/bool literals
  * functions: include toYaml toJson nindent indent quote default trunc
    trimSuffix trim lower replace contains printf (%s %v %d) and or not eq ne
    add base fail empty
Unlike Helm, a reference to a .Values key that values.yaml does not define is
an error here (catches typos).

Usage: python3 tests/deploy/render_chart_test.py [--repo DIR] [--print NAME]
  --print defaults|gpu|other|tls  prints the rendered chart for that value set.
  --write-k8s                 regenerates k8s/base/ from the chart defaults.
Requires Python 3.8+ and PyYAML (Debian: python3-yaml).
"""

import argparse
import copy
import fnmatch
import functools
import json
import os
import posixpath
import re
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    print("FAIL: PyYAML is required (apt-get install python3-yaml)")
    sys.exit(1)


# --------------------------------------------------------------------------
# Minimal Go-template engine
# --------------------------------------------------------------------------

class TemplateError(Exception):
    pass


class Files:
    """.Files of a chart: files under the chart dir plus test overlays."""

    def __init__(self, chart_dir, overlay=None):
        self.files = {}
        for root, _, names in os.walk(chart_dir):
            for n in names:
                full = os.path.join(root, n)
                rel = os.path.relpath(full, chart_dir).replace(os.sep, "/")
                if rel.startswith("templates/"):
                    continue
                with open(full, encoding="utf-8") as f:
                    self.files[rel] = f.read()
        self.files.update(overlay or {})

    def Get(self, path):
        return self.files.get(path, "")

    def Glob(self, pattern):
        return {p: self.files[p] for p in sorted(self.files)
                if fnmatch.fnmatchcase(p, pattern) and "/" not in p[len(pattern.rsplit("/", 1)[0]) + 1:]}


ACTION_RE = re.compile(r"\{\{(-\s+)?(.*?)(\s+-)?\}\}", re.S)
TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:\\.|[^"\\])*")
  | (?P<num>-?\d+)
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<pipe>\|)
  | (?P<comma>,)
""", re.X)


def tokenize(src):
    out, pos = [], 0
    while pos < len(src):
        m = TOKEN_RE.match(src, pos)
        if not m:
            raise TemplateError("cannot tokenize %r" % src[pos:])
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def parse_pipeline(tokens):
    """-> (decl_vars, assign, commands); command = list of operands."""
    decl, assign = [], None
    # "$a, $b :=" / "$a :=" / "$a ="
    i = 0
    names = []
    while i < len(tokens) and tokens[i][0] == "var":
        names.append(tokens[i][1])
        if i + 1 < len(tokens) and tokens[i + 1][0] == "comma":
            i += 2
            continue
        break
    if names and i + 1 < len(tokens) and tokens[i + 1][0] in ("decl", "assign"):
        decl, assign = names, tokens[i + 1][0]
        tokens = tokens[i + 2:]
    cmds, pos = parse_commands(tokens, 0)
    if pos != len(tokens):
        raise TemplateError("unexpected %r" % (tokens[pos:],))
    return decl, assign, cmds


def parse_commands(tokens, pos):
    cmds, cur = [], []
    while pos < len(tokens):
        kind, val = tokens[pos]
        if kind == "rp":
            break
        if kind == "pipe":
            cmds.append(cur)
            cur = []
            pos += 1
            continue
        if kind == "lp":
            sub, pos = parse_commands(tokens, pos + 1)
            if pos >= len(tokens) or tokens[pos][0] != "rp":
                raise TemplateError("missing )")
            cur.append(("sub", sub))
            pos += 1
            continue
        cur.append((kind, val))
        pos += 1
    cmds.append(cur)
    if any(not c for c in cmds):
        raise TemplateError("empty command in pipeline")
    return cmds, pos


def parse_template(text, name):
    """Parse text into a node list; returns (nodes, defines)."""
    pieces = []  # ("text", s) | ("act", s)
    pos = 0
    for m in ACTION_RE.finditer(text):
        pieces.append(["text", text[pos:m.start()]])
        if m.group(1) and pieces[-1][0] == "text":
            pieces[-1][1] = pieces[-1][1].rstrip(" \t\r\n")
        pieces.append(["act", m.group(2).strip(), bool(m.group(3))])
        pos = m.end()
    pieces.append(["text", text[pos:]])
    # right trims
    for i, p in enumerate(pieces):
        if p[0] == "act" and p[2] and i + 1 < len(pieces):
            pieces[i + 1][1] = pieces[i + 1][1].lstrip(" \t\r\n")

    defines = {}
    root = []
    stack = [("root", root, None)]  # (kind, current body list, node)

    for p in pieces:
        body = stack[-1][1]
        if p[0] == "text":
            if p[1]:
                body.append(("text", p[1]))
            continue
        src = p[1]
        if src.startswith("/*"):
            if not src.endswith("*/"):
                raise TemplateError("%s: bad comment" % name)
            continue
        toks = tokenize(src)
        if not toks:
            raise TemplateError("%s: empty action" % name)
        head = toks[0]
        if head == ("ident", "if"):
            node = {"kind": "if", "branches": [(parse_pipeline(toks[1:]), [])], "else": None}
            body.append(node)
            stack.append(("if", node["branches"][0][1], node))
        elif head == ("ident", "with"):
            node = {"kind": "with", "pipe": parse_pipeline(toks[1:]), "body": [], "else": None}
            body.append(node)
            stack.append(("with", node["body"], node))
        elif head == ("ident", "range"):
            node = {"kind": "range", "pipe": parse_pipeline(toks[1:]), "body": [], "else": None}
            body.append(node)
            stack.append(("range", node["body"], node))
        elif head == ("ident", "define"):
            if len(toks) != 2 or toks[1][0] != "str":
                raise TemplateError("%s: bad define" % name)
            dname = json.loads(toks[1][1])
            node = {"kind": "define", "body": []}
            defines[dname] = node["body"]
            stack.append(("define", node["body"], node))
        elif head == ("ident", "else"):
            kind, _, node = stack.pop()
            if kind not in ("if", "with", "range"):
                raise TemplateError("%s: else outside if/with/range" % name)
            if len(toks) > 1 and toks[1] == ("ident", "if") and kind == "if":
                node["branches"].append((parse_pipeline(toks[2:]), []))
                stack.append(("if", node["branches"][-1][1], node))
            else:
                node["else"] = []
                stack.append(("else", node["else"], node))
        elif head == ("ident", "end"):
            if len(stack) == 1:
                raise TemplateError("%s: unmatched end" % name)
            stack.pop()
        elif head[0] == "ident" and head[1] in ("template", "block", "tpl"):
            raise TemplateError("%s: %s not supported by the test engine" % (name, head[1]))
        else:
            body.append({"kind": "action", "pipe": parse_pipeline(toks)})
    if len(stack) != 1:
        raise TemplateError("%s: missing end" % name)
    return root, defines


def truthy(v):
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, dict):
        return any(k != "__strict__" for k in v)
    if isinstance(v, (str, list, tuple)):
        return len(v) > 0
    return True


def to_str(v):
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (dict, list)):
        raise TemplateError("printing a %s directly; use toYaml/toJson" % type(v).__name__)
    return str(v)


def go_printf(fmt, *args):
    conv = re.sub(r"%[vsd]", "%s", fmt)
    return conv % tuple(to_str(a) for a in args)


def indent(n, s):
    pad = " " * int(n)
    return pad + to_str(s).replace("\n", "\n" + pad)


def to_yaml(v):
    v = unstrict(v)
    if v is None:
        return "null"
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def quote(*vs):
    return " ".join(json.dumps(to_str(v)) for v in vs if v is not None)


class Fail(TemplateError):
    pass


def _fail(msg):
    raise Fail(msg)


class Engine:
    def __init__(self, defines):
        self.defines = defines
        self.funcs = {
            "include": self.include,
            "toYaml": to_yaml,
            "toJson": lambda v: json.dumps(unstrict(v), separators=(",", ":"), sort_keys=True),
            "nindent": lambda n, s: "\n" + indent(n, s),
            "indent": indent,
            "quote": quote,
            "default": lambda d, v=None: v if truthy(v) else d,
            "trunc": lambda n, s: to_str(s)[:int(n)],
            "trimSuffix": lambda suf, s: to_str(s)[:-len(suf)] if suf and to_str(s).endswith(suf) else to_str(s),
            "trim": lambda s: to_str(s).strip(),
            "lower": lambda s: to_str(s).lower(),
            "replace": lambda old, new, s: to_str(s).replace(old, new),
            "contains": lambda sub, s: sub in to_str(s),
            "printf": go_printf,
            "and": lambda *a: next((x for x in a if not truthy(x)), a[-1]),
            "or": lambda *a: next((x for x in a if truthy(x)), a[-1]),
            "not": lambda v: not truthy(v),
            "eq": lambda a, *b: any(a == x for x in b),
            "ne": lambda a, b: a != b,
            "add": lambda *a: sum(int(x) for x in a),
            "mul": lambda *a: functools.reduce(lambda x, y: x * int(y), a, 1),
            "base": posixpath.basename,
            "fail": _fail,
            "empty": lambda v: not truthy(v),
        }

    def include(self, name, ctx):
        if name not in self.defines:
            raise TemplateError("include of undefined template %r" % name)
        return self.exec_nodes(self.defines[name], ctx, {"$": ctx})

    # -- evaluation -------------------------------------------------------
    def resolve(self, base, path, what):
        cur = base
        for part in path:
            if isinstance(cur, dict):
                if part not in cur:
                    if cur.get("__strict__"):
                        raise TemplateError("undefined value %s" % what)
                    cur = None
                    continue
                cur = cur[part]
            elif cur is None:
                raise TemplateError("nil pointer evaluating %s" % what)
            elif hasattr(cur, part):
                cur = getattr(cur, part)
            else:
                raise TemplateError("can't evaluate field %s in %s" % (part, what))
        return cur

    def operand(self, op, dot, scope):
        kind, val = op
        if kind == "str":
            return json.loads(val)
        if kind == "num":
            return int(val)
        if kind == "field":
            if val == ".":
                return dot
            return self.resolve(dot, val[1:].split("."), val)
        if kind == "var":
            name, *path = val.split(".")
            if name not in scope:
                raise TemplateError("undefined variable %s" % name)
            return self.resolve(scope[name], path, val)
        if kind == "sub":
            return self.eval_cmds(val, dot, scope)
        if kind == "ident":
            if val in ("true", "false"):
                return val == "true"
            if val == "nil":
                return None
            raise TemplateError("function %s used as a value" % val)
        raise TemplateError("bad operand %r" % (op,))

    def eval_cmd(self, cmd, dot, scope, piped, has_piped):
        first = cmd[0]
        extra = [piped] if has_piped else []
        if first[0] == "ident" and first[1] not in ("true", "false", "nil"):
            fn = self.funcs.get(first[1])
            if fn is None:
                raise TemplateError("function %r not supported by the test engine" % first[1])
            args = [self.operand(o, dot, scope) for o in cmd[1:]] + extra
            return fn(*args)
        val = self.operand(first, dot, scope)
        if callable(val):
            return val(*([self.operand(o, dot, scope) for o in cmd[1:]] + extra))
        if len(cmd) > 1 or has_piped:
            raise TemplateError("can't give arguments to a non-function %r" % (first,))
        return val

    def eval_cmds(self, cmds, dot, scope):
        val, has = None, False
        for cmd in cmds:
            val = self.eval_cmd(cmd, dot, scope, val, has)
            has = True
        return val

    def eval_pipe(self, pipe, dot, scope):
        decl, assign, cmds = pipe
        val = self.eval_cmds(cmds, dot, scope)
        if decl:
            if len(decl) != 1:
                raise TemplateError("multiple variables only allowed in range")
            if assign == "assign" and decl[0] not in scope:
                raise TemplateError("assignment to undeclared %s" % decl[0])
            scope[decl[0]] = val
        return val, bool(decl)

    def exec_nodes(self, nodes, dot, scope):
        out = []
        for node in nodes:
            if isinstance(node, tuple):
                out.append(node[1])
                continue
            k = node["kind"]
            if k == "action":
                val, declared = self.eval_pipe(node["pipe"], dot, scope)
                if not declared:
                    out.append(to_str(val))
            elif k == "if":
                for pipe, body in node["branches"]:
                    inner = dict(scope)
                    val, _ = self.eval_pipe(pipe, dot, inner)
                    if truthy(val):
                        out.append(self.exec_nodes(body, dot, inner))
                        break
                else:
                    if node["else"] is not None:
                        out.append(self.exec_nodes(node["else"], dot, dict(scope)))
            elif k == "with":
                inner = dict(scope)
                val, _ = self.eval_pipe(node["pipe"], dot, inner)
                if truthy(val):
                    out.append(self.exec_nodes(node["body"], val, inner))
                elif node["else"] is not None:
                    out.append(self.exec_nodes(node["else"], dot, dict(scope)))
            elif k == "range":
                decl, _, cmds = node["pipe"]
                coll = self.eval_cmds(cmds, dot, scope)
                if isinstance(coll, dict):
                    items = [(key, coll[key]) for key in sorted(coll) if key != "__strict__"]
                elif isinstance(coll, (list, tuple)):
                    items = list(enumerate(coll))
                elif coll is None:
                    items = []
                elif isinstance(coll, int):
                    items = [(i, i) for i in range(coll)]
                else:
                    raise TemplateError("can't range over %r" % (coll,))
                if not items and node["else"] is not None:
                    out.append(self.exec_nodes(node["else"], dot, dict(scope)))
                for key, elem in items:
                    inner = dict(scope)
                    if len(decl) == 1:
                        inner[decl[0]] = elem
                    elif len(decl) == 2:
                        inner[decl[0]], inner[decl[1]] = key, elem
                    out.append(self.exec_nodes(node["body"], elem, inner))
            else:
                raise TemplateError("unexpected node %s" % k)
        return "".join(out)


def strict(v):
    """Mark every mapping so that missing keys are errors."""
    if isinstance(v, dict):
        d = {k: strict(x) for k, x in v.items()}
        d["__strict__"] = True
        return d
    if isinstance(v, list):
        return [strict(x) for x in v]
    return v


def unstrict(v):
    if isinstance(v, dict):
        return {k: unstrict(x) for k, x in v.items() if k != "__strict__"}
    if isinstance(v, list):
        return [unstrict(x) for x in v]
    return v


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def render_chart(chart_dir, overrides=None, release="resbm", namespace="resbm", file_overlay=None):
    """Returns ({template file: rendered text}, notes text)."""
    with open(os.path.join(chart_dir, "Chart.yaml"), encoding="utf-8") as f:
        chart = yaml.safe_load(f)
    with open(os.path.join(chart_dir, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)

    def check_known(over, base, path):
        for k, v in over.items():
            if k not in base:
                raise TemplateError("override of unknown value %s%s" % (path, k))
            if isinstance(v, dict) and isinstance(base[k], dict) and base[k]:
                check_known(v, base[k], path + k + ".")

    overrides = overrides or {}
    check_known(overrides, values, "")
    values = deep_merge(values, overrides)
    tdir = os.path.join(chart_dir, "templates")
    parsed, defines = {}, {}
    for name in sorted(os.listdir(tdir)):
        with open(os.path.join(tdir, name), encoding="utf-8") as f:
            nodes, defs = parse_template(f.read(), name)
        parsed[name] = nodes
        defines.update(defs)
    engine = Engine(defines)
    ctx = {
        "Values": strict(values),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm",
                    "IsInstall": True, "IsUpgrade": False, "__strict__": True},
        "Chart": dict(strict({"Name": chart["name"], "Version": chart["version"],
                              "AppVersion": chart.get("appVersion", "")})),
        "Files": Files(chart_dir, file_overlay),
        "__strict__": True,
    }
    rendered, notes = {}, None
    for name, nodes in parsed.items():
        try:
            text = engine.exec_nodes(nodes, ctx, {"$": ctx})
        except Fail:
            raise
        except TemplateError as e:
            raise TemplateError("%s: %s" % (name, e))
        if name == "NOTES.txt":
            notes = text
        elif not name.startswith("_"):
            rendered[name] = text
    return rendered, notes


def load_docs(text, source):
    docs = []
    for d in yaml.safe_load_all(text):
        if d is None:
            continue
        if not isinstance(d, dict):
            raise ValueError("%s: document is not a mapping" % source)
        d = unstrict(d)
        d.setdefault("__source__", source)
        docs.append(d)
    return docs


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

class Checker:
    def __init__(self):
        self.failures = 0
        self.passed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("  ok   %s" % what)
        else:
            self.failures += 1
            print("  FAIL %s" % what)
        return cond


DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def flags_of(args):
    out = {}
    for a in args:
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            out[k] = v
    return out


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def check_bundle(c, docs, exp):
    """exp: dict(name, ns, replicas, gpu, servicemonitor, prometheusrule,
    dashboards, submit, checkpoints_claim, create_checkpoints_pvc, job_json)."""
    fn = exp["name"]
    by = {}
    for d in docs:
        key = (d.get("kind"), d.get("metadata", {}).get("name"))
        c.check(key not in by, "%s/%s defined once" % key)
        by[key] = d
    coord, worker = fn + "-coordinator", fn + "-worker"

    expected = [("ServiceAccount", fn), ("Deployment", coord), ("Service", coord),
                ("PersistentVolumeClaim", coord + "-data"), ("StatefulSet", worker),
                ("Service", worker), ("ConfigMap", fn + "-job")]
    if exp["create_checkpoints_pvc"]:
        expected.append(("PersistentVolumeClaim", exp["checkpoints_claim"]))
    if exp["submit"]:
        expected.append(("Job", fn + "-submit"))
    if exp["servicemonitor"]:
        expected += [("ServiceMonitor", coord), ("ServiceMonitor", worker)]
    if exp["prometheusrule"]:
        expected.append(("PrometheusRule", fn + "-rules"))
    for k in expected:
        c.check(k in by, "object %s/%s present" % k)
    n_dash = len([k for k in by if k[0] == "ConfigMap" and "-dashboard-" in k[1]])
    c.check(n_dash == exp["dashboards"], "%d dashboard ConfigMaps (want %d)" % (n_dash, exp["dashboards"]))
    unexpected = [k for k in by if k not in expected and not (k[0] == "ConfigMap" and "-dashboard-" in k[1])]
    c.check(not unexpected, "no unexpected objects %s" % unexpected)
    if not all(k in by for k in expected[:7]):
        return

    for (kind, name), d in sorted(by.items()):
        md = d["metadata"]
        c.check(md.get("namespace") == exp["ns"], "%s/%s namespace %s" % (kind, name, exp["ns"]))
        c.check(bool(DNS1123.match(name)) and len(name) <= 63, "%s/%s name is DNS-1123" % (kind, name))
        c.check(md.get("labels", {}).get("app.kubernetes.io/part-of") == "resbm",
                "%s/%s labelled part-of=resbm" % (kind, name))

    pvcs = {n: d for (k, n), d in by.items() if k == "PersistentVolumeClaim"}
    cms = {n for (k, n) in by if k == "ConfigMap"}

    # --- generic pod checks
    for kind in ("Deployment", "StatefulSet", "Job"):
        for (k, name), d in sorted(by.items()):
            if k != kind:
                continue
            spec = pod_spec(d)
            tlabels = d["spec"]["template"]["metadata"].get("labels", {})
            if kind != "Job":
                sel = d["spec"]["selector"]["matchLabels"]
                c.check(sel.items() <= tlabels.items(), "%s/%s selector matches pod labels" % (kind, name))
            psc = spec.get("securityContext", {})
            c.check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 10001
                    and psc.get("fsGroup") == 10001, "%s/%s runs as non-root uid 10001" % (kind, name))
            c.check(spec.get("automountServiceAccountToken") is False
                    and spec.get("serviceAccountName") == fn, "%s/%s uses SA %s without token" % (kind, name, fn))
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            for v in vols.values():
                if "persistentVolumeClaim" in v:
                    cn = v["persistentVolumeClaim"]["claimName"]
                    c.check(cn in pvcs or cn == exp["checkpoints_claim"],
                            "%s/%s volume %s -> claim %s exists/expected" % (kind, name, v["name"], cn))
                if "configMap" in v:
                    c.check(v["configMap"]["name"] in cms, "%s/%s volume %s -> ConfigMap exists" % (kind, name, v["name"]))
            for ct in spec["containers"]:
                csc = ct.get("securityContext", {})
                c.check(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
                        and csc.get("capabilities", {}).get("drop") == ["ALL"],
                        "%s/%s/%s read-only root fs, no privilege escalation, caps dropped" % (kind, name, ct["name"]))
                mounts = ct.get("volumeMounts", [])
                c.check(all(m["name"] in vols for m in mounts), "%s/%s/%s mounts only defined volumes" % (kind, name, ct["name"]))
                c.check(any(m["mountPath"] == "/tmp" for m in mounts), "%s/%s/%s has writable /tmp" % (kind, name, ct["name"]))
                res = ct.get("resources", {})
                c.check(bool(res.get("requests")) and bool(res.get("limits")),
                        "%s/%s/%s has resource requests and limits" % (kind, name, ct["name"]))
                envs = {e["name"] for e in ct.get("env", [])}
                refs = set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(ct.get("args", []))))
                c.check(refs <= envs, "%s/%s/%s $(VAR) references %s are defined env vars" % (kind, name, ct["name"], sorted(refs)))
                c.check(not re.search(r"\$\((?![A-Za-z_][A-Za-z0-9_]*\))", " ".join(ct.get("args", []))),
                        "%s/%s/%s no shell $(...) that Kubernetes would try to expand" % (kind, name, ct["name"]))
                mpaths = [m["mountPath"].rstrip("/") + "/" for m in mounts]
                nested = sorted(a for a in mpaths for b in mpaths if a != b and a.startswith(b))
                c.check(not nested, "%s/%s/%s has no mount nested in another %s" % (kind, name, ct["name"], nested))
                cports = {p["name"]: p["containerPort"] for p in ct.get("ports", [])}
                # Kubelet gRPC probes cannot do TLS: with TLS the probes are TCP connects.
                action = "tcpSocket" if exp["tls"] else "grpc"
                for pk in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if kind == "Job":
                        continue
                    pr = ct.get(pk) or {}
                    actions = {a for a in ("grpc", "tcpSocket", "httpGet", "exec") if a in pr}
                    ok = actions == {action} and pr[action].get("port") == cports.get("grpc")
                    c.check(ok, "%s/%s/%s %s is %s on the grpc containerPort %s"
                            % (kind, name, ct["name"], pk, action, cports.get("grpc")))
                if kind != "Job":
                    rp, lp = ct["readinessProbe"], ct["livenessProbe"]
                    c.check(1 <= rp.get("periodSeconds", 10) <= lp.get("periodSeconds", 10) <= 30
                            and lp.get("failureThreshold", 3) * lp.get("periodSeconds", 10) >= 30,
                            "%s/%s probe periods sane (readiness %ss <= liveness %ss, liveness tolerates >= 30s)"
                            % (kind, name, rp.get("periodSeconds"), lp.get("periodSeconds")))
                    flags = flags_of(ct.get("args", []))
                    c.check(spec.get("terminationGracePeriodSeconds", 30) > int(flags.get("drain-seconds", 0)),
                            "%s/%s terminationGracePeriodSeconds %s > --drain-seconds %s"
                            % (kind, name, spec.get("terminationGracePeriodSeconds"), flags.get("drain-seconds")))

    def services_match(svc_name, workload):
        svc = by[("Service", svc_name)]
        tl = workload["spec"]["template"]["metadata"]["labels"]
        c.check(svc["spec"]["selector"].items() <= tl.items(), "Service/%s selector matches pod labels" % svc_name)
        ct = pod_spec(workload)["containers"][0]
        cports = {p["name"]: p["containerPort"] for p in ct["ports"]}
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            ok = (tp in cports) if isinstance(tp, str) else (tp in cports.values())
            c.check(ok, "Service/%s port %s targets container port %s" % (svc_name, p["name"], tp))
            c.check(cports.get(p["name"]) == p["port"], "Service/%s port %s number %s == containerPort" % (svc_name, p["name"], p["port"]))
        return svc, cports

    # --- coordinator
    dep = by[("Deployment", coord)]
    c.check(dep["spec"].get("replicas") == 1, "coordinator replicas == 1")
    c.check(dep["spec"].get("strategy", {}).get("type") == "Recreate", "coordinator strategy Recreate")
    csvc, ccports = services_match(coord, dep)
    cct = pod_spec(dep)["containers"][0]
    cf = flags_of(cct["args"])
    c.check(cct.get("command") == ["resbm-coordinator"], "coordinator runs resbm-coordinator")
    c.check(port_of(cf.get("listen", ":0")) == ccports.get("grpc"), "coordinator --listen port == grpc containerPort")
    c.check(port_of(cf.get("metrics-listen", ":0")) == ccports.get("metrics"), "coordinator --metrics-listen port == metrics containerPort")
    for f in ("data-dir", "checkpoint-dir", "wait-workers-seconds", "step-timeout-seconds", "heartbeat-timeout-ms", "drain-seconds"):
        c.check(f in cf, "coordinator has --%s" % f)
    cvols = {v["name"]: v for v in pod_spec(dep)["volumes"]}
    cmounts = {m["mountPath"]: m["name"] for m in cct["volumeMounts"]}
    dvol = cvols.get(cmounts.get(cf.get("data-dir")), {})
    dclaim = dvol.get("persistentVolumeClaim", {}).get("claimName")
    c.check(dclaim == coord + "-data" and "ReadWriteOnce" in pvcs.get(dclaim, {}).get("spec", {}).get("accessModes", []),
            "coordinator --data-dir %s is on the ReadWriteOnce PVC %s" % (cf.get("data-dir"), dclaim))
    shared_mount = [p for p in cmounts if cf.get("checkpoint-dir", "").startswith(p.rstrip("/") + "/")]
    c.check(len(shared_mount) == 1, "coordinator --checkpoint-dir %s is below a mount" % cf.get("checkpoint-dir"))
    shared_path = shared_mount[0] if shared_mount else None
    svol = cvols.get(cmounts.get(shared_path), {})
    c.check(svol.get("persistentVolumeClaim", {}).get("claimName") == exp["checkpoints_claim"],
            "coordinator checkpoint mount uses claim %s" % exp["checkpoints_claim"])
    if exp["create_checkpoints_pvc"]:
        c.check("ReadWriteMany" in pvcs[exp["checkpoints_claim"]]["spec"]["accessModes"],
                "checkpoints PVC is ReadWriteMany")
    c.check(csvc["spec"].get("type", "ClusterIP") == "ClusterIP" and csvc["spec"].get("clusterIP") != "None",
            "coordinator Service is a normal ClusterIP service")

    # --- workers
    sts = by[("StatefulSet", worker)]
    wsvc, wcports = services_match(worker, sts)
    c.check(sts["spec"]["serviceName"] == worker, "StatefulSet serviceName == headless Service %s" % worker)
    c.check(wsvc["spec"].get("clusterIP") == "None", "worker Service is headless (clusterIP None)")
    c.check(wsvc["spec"].get("publishNotReadyAddresses") is True, "worker Service publishes not-ready addresses")
    c.check(sts["spec"]["replicas"] == exp["replicas"], "worker replicas %s == %s" % (sts["spec"]["replicas"], exp["replicas"]))
    wct = pod_spec(sts)["containers"][0]
    wf = flags_of(wct["args"])
    c.check(wct.get("command") == ["resbm-worker"], "worker runs resbm-worker")
    c.check(port_of(wf.get("listen", ":0")) == wcports.get("grpc"), "worker --listen port == grpc containerPort")
    c.check(port_of(wf.get("metrics-listen", ":0")) == wcports.get("metrics"), "worker --metrics-listen port == metrics containerPort")
    want_adv = "$(POD_NAME).%s.$(POD_NAMESPACE).svc.cluster.local:%d" % (worker, wcports.get("grpc"))
    c.check(wf.get("advertise-address") == want_adv, "worker --advertise-address == %s" % want_adv)
    env = {e["name"]: e for e in wct.get("env", [])}
    c.check(env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
            and env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace",
            "worker POD_NAME/POD_NAMESPACE from the downward API")
    cgrpc = [p["port"] for p in csvc["spec"]["ports"] if p["name"] == "grpc"][0]
    c.check(wf.get("coordinator") == "%s:%d" % (coord, cgrpc), "worker --coordinator == %s:%d (coordinator Service)" % (coord, cgrpc))
    c.check(wf.get("device") == ("cuda" if exp["gpu"] else "cpu"), "worker --device=%s" % wf.get("device"))
    c.check("threads" in wf and int(wf["threads"]) >= 1, "worker --threads set")
    wmounts = {m["mountPath"]: m["name"] for m in wct["volumeMounts"]}
    wvols = {v["name"]: v for v in pod_spec(sts)["volumes"]}
    c.check(shared_path in wmounts and wvols[wmounts[shared_path]].get("persistentVolumeClaim", {}).get("claimName")
            == exp["checkpoints_claim"], "workers mount the checkpoint claim at the coordinator's path %s" % shared_path)
    c.check(wf.get("checkpoint-dir") == cf.get("checkpoint-dir"),
            "worker --checkpoint-dir %s == the coordinator's %s" % (wf.get("checkpoint-dir"), cf.get("checkpoint-dir")))
    gpu_lim = wct["resources"].get("limits", {}).get("nvidia.com/gpu")
    if exp["gpu"]:
        c.check(gpu_lim == 1 and wct["resources"]["requests"].get("nvidia.com/gpu") == 1, "worker requests nvidia.com/gpu: 1")
        c.check(wct["image"].startswith("resbm-cuda:"), "GPU worker image %s" % wct["image"])
        c.check(any(t.get("key") == "nvidia.com/gpu" for t in pod_spec(sts).get("tolerations", [])), "GPU worker tolerates nvidia.com/gpu taint")
    else:
        c.check(gpu_lim is None, "CPU worker requests no GPU")
        c.check(wct["image"].startswith("resbm-cpu:"), "CPU worker image %s" % wct["image"])

    # --- job ConfigMap + submit Job
    cm = by[("ConfigMap", fn + "-job")]
    try:
        spec = json.loads(cm["data"]["job.json"])
    except Exception as e:  # noqa: BLE001
        spec = None
        c.check(False, "job.json parses as JSON (%s)" % e)
    c.check(spec == exp["job_json"], "job.json equals %s" % exp["job_json_source"])
    if spec:
        workers = spec["stages"]["num_stages"] * spec["stages"].get("replicas", 1)
        c.check(workers <= exp["replicas"], "job num_stages x replicas %s <= worker replicas" % workers)
    if exp["submit"]:
        job = by[("Job", fn + "-submit")]
        js = pod_spec(job)
        jct = js["containers"][0]
        c.check(js.get("restartPolicy") == "Never", "submit Job restartPolicy Never")
        jm = {m["mountPath"]: m["name"] for m in jct["volumeMounts"]}
        jv = {v["name"]: v for v in js["volumes"]}
        c.check(jv.get(jm.get("/etc/resbm"), {}).get("configMap", {}).get("name") == fn + "-job",
                "submit Job mounts ConfigMap %s-job at /etc/resbm" % fn)
        script = " ".join(jct.get("command", []) + jct.get("args", []))
        c.check("resbmctl submit /etc/resbm/job.json" in script and "resbmctl cluster" in script,
                "submit Job waits (resbmctl cluster) then runs resbmctl submit /etc/resbm/job.json")
        jenv = {e["name"]: e.get("value") for e in jct.get("env", [])}
        c.check(jenv.get("RESBM_COORDINATOR") == "%s:%d" % (coord, cgrpc), "submit Job RESBM_COORDINATOR == %s:%d" % (coord, cgrpc))

    check_security(c, by, exp)

    # --- monitoring
    if exp["servicemonitor"]:
        for svc_name in (coord, worker):
            sm = by[("ServiceMonitor", svc_name)]
            svc = by[("Service", svc_name)]
            ml = sm["spec"]["selector"]["matchLabels"]
            c.check(ml.items() <= svc["metadata"]["labels"].items(), "ServiceMonitor/%s selects Service/%s" % (svc_name, svc_name))
            others = [n for (k, n), d in by.items() if k == "Service" and n != svc_name and ml.items() <= d["metadata"]["labels"].items()]
            c.check(not others, "ServiceMonitor/%s selects no other Service %s" % (svc_name, others))
            names = {p["name"] for p in svc["spec"]["ports"]}
            c.check(all(e["port"] in names and e.get("path") == "/metrics" for e in sm["spec"]["endpoints"]),
                    "ServiceMonitor/%s endpoints use Service port names, path /metrics" % svc_name)
    if exp["prometheusrule"]:
        pr = by[("PrometheusRule", fn + "-rules")]
        groups = pr["spec"].get("groups") or []
        rules = [r for g in groups for r in g.get("rules", [])]
        c.check(bool(groups) and all("name" in g for g in groups), "PrometheusRule has named groups")
        c.check(bool(rules) and all(("alert" in r or "record" in r) and "expr" in r for r in rules),
                "PrometheusRule rules have alert/record + expr (%d rules)" % len(rules))
    for (k, n), d in by.items():
        if k == "ConfigMap" and "-dashboard-" in n:
            c.check(d["metadata"]["labels"].get("grafana_dashboard") == "1", "ConfigMap/%s labelled grafana_dashboard=\"1\"" % n)
            ok = True
            for key, val in d["data"].items():
                try:
                    json.loads(val)
                except ValueError:
                    ok = False
            c.check(ok and all(key.endswith(".json") for key in d["data"]), "ConfigMap/%s data is dashboard JSON" % n)


def secret_file(ct, spec, path):
    """The Secret file behind a path in a container: (secret name, key, mount), or Nones."""
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for m in ct.get("volumeMounts", []):
        root = m["mountPath"].rstrip("/") + "/"
        if not path.startswith(root):
            continue
        sec = vols.get(m["name"], {}).get("secret")
        if sec is None:
            return None, None, m
        rel = path[len(root):]
        items = sec.get("items")
        if items is None:
            return sec.get("secretName"), rel, m
        key = next((it["key"] for it in items if it["path"] == rel), None)
        return sec.get("secretName"), key, m
    return None, None, None


def check_security(c, by, exp):
    """Transport security: explicit --plaintext everywhere, or TLS files from Secrets."""
    fn = exp["name"]
    workloads = [("Deployment", fn + "-coordinator"), ("StatefulSet", fn + "-worker")]
    if exp["submit"]:
        workloads.append(("Job", fn + "-submit"))
    tls_flags = ("tls-cert", "tls-key", "tls-ca", "auth-tokens-file")
    for kind, name in workloads:
        spec = pod_spec(by[(kind, name)])
        ct = spec["containers"][0]
        args = ct.get("args", [])
        flags = flags_of(args)
        env = {e["name"]: e for e in ct.get("env", [])}
        secrets = [v["name"] for v in spec.get("volumes", []) if "secret" in v]
        who = "%s/%s" % (kind, name)
        if not exp["tls"]:
            if kind != "Job":
                c.check("--plaintext" in args and not any(f in flags for f in tls_flags),
                        "%s asks for --plaintext explicitly, no --tls-* flags" % who)
            else:
                c.check(env.get("RESBM_PLAINTEXT", {}).get("value") == "1"
                        and not any(k in env for k in ("RESBM_TLS_CA", "RESBM_TLS_CERT", "RESBM_TLS_KEY", "RESBM_TOKEN")),
                        "%s sets RESBM_PLAINTEXT=1 explicitly, no RESBM_TLS_*/RESBM_TOKEN" % who)
            c.check(not secrets, "%s mounts no Secrets without TLS %s" % (who, secrets))
            continue
        if kind != "Job":
            c.check("--plaintext" not in args and not any(a.startswith("--plaintext") for a in args),
                    "%s has no --plaintext with TLS" % who)
            want = {"tls-cert": "tls.pem", "tls-key": "tls.key", "tls-ca": "ca.pem"}
            for flag, key in sorted(want.items()):
                sname, skey, m = secret_file(ct, spec, flags.get(flag, ""))
                c.check(sname == exp["tls_secret"] and skey == key and bool(m) and m.get("readOnly") is True,
                        "%s --%s=%s is key %s of Secret %s, mounted read-only" % (who, flag, flags.get(flag), key, exp["tls_secret"]))
            if kind == "Deployment":
                sname, skey, m = secret_file(ct, spec, flags.get("auth-tokens-file", ""))
                c.check(sname == exp["tokens_secret"] and skey == "tokens" and bool(m) and m.get("readOnly") is True,
                        "%s --auth-tokens-file=%s is key tokens of Secret %s, mounted read-only"
                        % (who, flags.get("auth-tokens-file"), exp["tokens_secret"]))
            else:
                c.check("auth-tokens-file" not in flags, "%s has no --auth-tokens-file" % who)
            continue
        # The submit Job: the CA to verify the coordinator and a bearer token; no key.
        ca = env.get("RESBM_TLS_CA", {}).get("value", "")
        sname, skey, m = secret_file(ct, spec, ca)
        c.check(sname == exp["tls_secret"] and skey == "ca.pem" and bool(m) and m.get("readOnly") is True,
                "%s RESBM_TLS_CA=%s is key ca.pem of Secret %s, mounted read-only" % (who, ca, exp["tls_secret"]))
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        keys = [it["key"] for n in secrets for it in vols[n]["secret"].get("items") or [{"key": "*"}]]
        c.check(keys == ["ca.pem"], "%s mounts only ca.pem of the TLS Secret (not its key) %s" % (who, keys))
        ref = env.get("RESBM_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
        c.check(ref.get("name") == exp["client_token_secret"] and ref.get("key") == exp["client_token_key"],
                "%s RESBM_TOKEN from Secret %s key %s" % (who, exp["client_token_secret"], exp["client_token_key"]))
        c.check("RESBM_PLAINTEXT" not in env, "%s has no RESBM_PLAINTEXT with TLS" % who)


HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def normalize(d):
    d = copy.deepcopy(d)
    d.pop("__source__", None)

    def strip_md(md):
        for lab in HELM_ONLY_LABELS:
            md.get("labels", {}).pop(lab, None)
        ann = md.get("annotations")
        if ann is not None:
            for a in [a for a in ann if a.startswith("helm.sh/")]:
                del ann[a]
            if not ann:
                del md["annotations"]
    strip_md(d.get("metadata", {}))
    tmpl = d.get("spec", {}).get("template", {})
    if isinstance(tmpl, dict) and "metadata" in tmpl:
        strip_md(tmpl["metadata"])
    return d


def check_values_comments(c, path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    missing, list_indent = [], None
    prev = ""
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            continue
        ind = len(line) - len(line.lstrip())
        if list_indent is not None and ind > list_indent:
            prev = s
            continue
        list_indent = None
        if s.startswith("- "):
            list_indent = ind
            prev = s
            continue
        if re.match(r"^[A-Za-z0-9_.\-\"/]+:", s) and not prev.startswith("#") and "#" not in s:
            missing.append("%d:%s" % (i, s))
        prev = s
    c.check(not missing, "every key in values.yaml has a comment %s" % (missing[:5] or ""))



# --------------------------------------------------------------------------
# k8s/base generator (--write-k8s): the chart's default rendering as plain
# manifests, minus Helm-only metadata, yamllint-clean.
# --------------------------------------------------------------------------

K8S_HEADER = """\
# GENERATED from helm/resbm with default values (release "resbm", namespace
# "resbm") by: python3 tests/deploy/render_chart_test.py --write-k8s
# Edit the chart, then regenerate; the test checks that they match.
"""

K8S_EXTRA = {
    "submit-job.yaml": """\
# Re-applying is a no-op while the Job exists; to submit again:
#   kubectl -n resbm delete job resbm-submit && kubectl apply -k k8s/
# To deploy without submitting, drop submit-job.yaml from
# k8s/base/kustomization.yaml.
""",
}

NAMESPACE_YAML = """\
---
# Namespace of the plain manifests (the chart uses the release namespace).
apiVersion: v1
kind: Namespace
metadata:
  name: resbm
  labels:
    app.kubernetes.io/part-of: resbm
"""


def plain_manifest(text):
    lines = [ln for ln in text.split("\n")
             if not re.search(r"^\s*(helm\.sh/chart|app\.kubernetes\.io/managed-by|helm\.sh/hook[-a-z]*):", ln)]
    # drop "annotations:" keys left empty by the removal above
    out = []
    for i, ln in enumerate(lines):
        if ln.strip() == "annotations:":
            ind = len(ln) - len(ln.lstrip())
            nxt = next((x for x in lines[i + 1:] if x.strip()), "")
            if len(nxt) - len(nxt.lstrip()) <= ind:
                continue
        out.append(ln)
    # indent block sequences that toYaml put at their key's indentation
    res, i = [], 0
    while i < len(out):
        ln = out[i]
        res.append(ln)
        m = re.match(r"^(\s*)[^\s#-][^#]*:$", ln)
        if m and i + 1 < len(out) and re.match(r"^%s- " % m.group(1), out[i + 1]):
            ind = len(m.group(1))
            j = i + 1
            while j < len(out):
                x = out[j]
                xi = len(x) - len(x.lstrip())
                if x.strip() and (xi < ind or (xi == ind and not x.lstrip().startswith("- "))):
                    break
                res.append("  " + x if x.strip() else x)
                j += 1
            i = j
            continue
        i += 1
    body = "\n".join(res).strip("\n") + "\n"
    return body


def write_k8s(chart, base_dir):
    rendered, _ = render_chart(chart)
    os.makedirs(base_dir, exist_ok=True)
    names = []
    for name, text in sorted(rendered.items()):
        # Dashboards stay single-sourced in helm/resbm/dashboards (see k8s/README.md).
        if name == "dashboards-configmap.yaml" or not load_docs(text, name):
            continue
        body = plain_manifest(text)
        with open(os.path.join(base_dir, name), "w", encoding="utf-8") as f:
            f.write("---\n" + K8S_HEADER + K8S_EXTRA.get(name, "") + body)
        names.append(name)
    with open(os.path.join(base_dir, "namespace.yaml"), "w", encoding="utf-8") as f:
        f.write(NAMESPACE_YAML)
    names.append("namespace.yaml")
    with open(os.path.join(base_dir, "kustomization.yaml"), "w", encoding="utf-8") as f:
        f.write("---\n" + K8S_HEADER + "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                "namespace: resbm\nresources:\n" + "".join("  - %s\n" % n for n in sorted(names)))
    print("wrote %s: %s" % (base_dir, ", ".join(sorted(names))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    ap.add_argument("--print", dest="print_set", choices=["defaults", "gpu", "other", "tls"])
    ap.add_argument("--write-k8s", action="store_true", help="regenerate k8s/base from the chart defaults")
    args = ap.parse_args()
    repo = args.repo
    chart = os.path.join(repo, "helm", "resbm")
    if args.write_k8s:
        write_k8s(chart, os.path.join(repo, "k8s", "base"))
        return 0
    k8s = os.path.join(repo, "k8s", "base")
    with open(os.path.join(repo, "configs", "default.json"), encoding="utf-8") as f:
        default_job = json.load(f)
    c = Checker()

    # Files for the monitoring scenario: use the real ones when present.
    fixture_files = {}
    rules_path = os.path.join(chart, "alerts", "resbm-rules.yml")
    if not os.path.exists(rules_path):
        fixture_files["alerts/resbm-rules.yml"] = (
            "groups:\n  - name: resbm-test\n    rules:\n      - alert: ResbmTestAlert\n"
            "        expr: up{job=\"resbm\"} == 0\n        for: 1m\n"
            "        annotations:\n          summary: \"{{ $labels.instance }} down\"\n")
    real_dash = sorted(n for n in os.listdir(os.path.join(chart, "dashboards")) if n.endswith(".json"))
    if not real_dash:
        fixture_files["dashboards/test_fixture.json"] = '{"title": "fixture", "panels": [{"legendFormat": "{{instance}}"}]}\n'
    n_dash = max(1, len(real_dash))

    base_exp = dict(name="resbm", ns="resbm", replicas=4, gpu=False, servicemonitor=False, prometheusrule=False,
                    dashboards=len(real_dash), submit=True, checkpoints_claim="resbm-checkpoints",
                    create_checkpoints_pvc=True, job_json=default_job, job_json_source="configs/default.json",
                    tls=False)
    debug_json_path = os.path.join(repo, "configs", "debug.json")
    with open(debug_json_path, encoding="utf-8") as f:
        debug_text = f.read()
    scenarios = {
        "defaults": (dict(), "resbm", "resbm", {}, base_exp),
        "gpu": (dict(worker={"gpu": {"enabled": True}}, serviceMonitor={"enabled": True, "labels": {"release": "kps"}},
                     prometheusRule={"enabled": True}, dashboards={"annotations": {"grafana_folder": "ResBM"}}),
                "resbm", "resbm", fixture_files,
                dict(base_exp, gpu=True, servicemonitor=True, prometheusrule=True, dashboards=n_dash)),
        # Two pipelines of 4 stages and a spare: 9 workers.
        "other": (dict(worker={"spares": 1, "pipelines": 2}, checkpoints={"existingClaim": "team-rwx"},
                       submitJob={"enabled": False},
                       dashboards={"enabled": False}, job={"json": debug_text}),
                  "demo", "ml", fixture_files,
                  dict(base_exp, name="demo-resbm", ns="ml", replicas=9, submit=False, dashboards=0,
                       checkpoints_claim="team-rwx", create_checkpoints_pvc=False,
                       job_json=json.loads(debug_text), job_json_source="configs/debug.json")),
        "tls": (dict(tls={"enabled": True, "secretName": "resbm-certs", "clientTokenSecretKey": "submit-token"}),
                "resbm", "resbm", {},
                dict(base_exp, tls=True, tls_secret="resbm-certs", tokens_secret="resbm-tokens",
                     client_token_secret="resbm-submit-token", client_token_key="submit-token")),
    }

    rendered_defaults = None
    for sname, (over, rel, ns, overlay, exp) in scenarios.items():
        print("== helm chart, values set %r (release %s, namespace %s, overrides %s)" % (sname, rel, ns, json.dumps(over)[:200]))
        try:
            rendered, notes = render_chart(chart, over, rel, ns, overlay)
        except TemplateError as e:
            c.check(False, "chart renders: %s" % e)
            continue
        c.check(True, "chart renders (%d templates)" % len(rendered))
        if args.print_set == sname:
            for name, text in rendered.items():
                print("# ---- %s\n%s" % (name, text))
            print("# ---- NOTES.txt\n%s" % notes)
        docs = []
        for name, text in rendered.items():
            try:
                docs += load_docs(text, name)
            except Exception as e:  # noqa: BLE001
                c.check(False, "%s rendered YAML parses: %s" % (name, e))
        c.check(all("\t" not in t for t in rendered.values()), "rendered YAML has no tabs")
        c.check(bool(notes) and "resbmctl cluster" in notes and "resbmctl submit" in notes and "Grafana" in notes,
                "NOTES.txt renders and explains submit/cluster/Grafana")
        if exp["tls"]:
            c.check("--tls-ca=" in notes and "--plaintext" not in notes and "RESBM_PLAINTEXT" not in notes,
                    "NOTES.txt resbmctl commands use --tls-ca and a token, no --plaintext")
        else:
            c.check("--plaintext" in notes and "--tls-ca" not in notes,
                    "NOTES.txt resbmctl commands ask for --plaintext")
        check_bundle(c, docs, exp)
        if sname == "defaults":
            rendered_defaults = docs

    print("== helm chart: prometheusRule.enabled without alerts/resbm-rules.yml fails clearly")
    if os.path.exists(rules_path):
        c.check(True, "skipped (alerts/resbm-rules.yml exists)")
    else:
        try:
            render_chart(chart, dict(prometheusRule={"enabled": True}))
            c.check(False, "render fails")
        except Fail as e:
            c.check("resbm-rules.yml" in str(e), "render fails with: %s" % e)

    print("== helm chart files")
    check_values_comments(c, os.path.join(chart, "values.yaml"))
    with open(os.path.join(chart, "files", "job.json"), encoding="utf-8") as f:
        c.check(json.load(f) == default_job, "helm/resbm/files/job.json equals configs/default.json (copy in sync)")
    with open(os.path.join(chart, "Chart.yaml"), encoding="utf-8") as f:
        ch = yaml.safe_load(f)
    c.check(ch.get("apiVersion") == "v2" and ch.get("name") == "resbm" and ch.get("version"), "Chart.yaml apiVersion v2, name, version")
    c.check(os.path.exists(os.path.join(chart, "dashboards", "README.md")), "dashboards/README.md exists")

    print("== plain manifests k8s/ (k8s/kustomization.yaml -> k8s/base/)")
    with open(os.path.join(repo, "k8s", "kustomization.yaml"), encoding="utf-8") as f:
        root_k = yaml.safe_load(f)
    c.check(root_k.get("resources") == ["base"], "k8s/kustomization.yaml applies k8s/base")
    with open(os.path.join(k8s, "kustomization.yaml"), encoding="utf-8") as f:
        kust = yaml.safe_load(f)
    files = sorted(n for n in os.listdir(k8s) if n.endswith(".yaml") and n != "kustomization.yaml")
    c.check(sorted(kust.get("resources", [])) == files, "kustomization.yaml lists every k8s/*.yaml %s" % files)
    c.check(kust.get("namespace") == "resbm", "kustomization namespace resbm")
    kdocs = []
    for n in files:
        with open(os.path.join(k8s, n), encoding="utf-8") as f:
            text = f.read()
        try:
            kdocs += load_docs(text, n)
        except Exception as e:  # noqa: BLE001
            c.check(False, "k8s/%s parses: %s" % (n, e))
    ns_docs = [d for d in kdocs if d.get("kind") == "Namespace"]
    c.check(len(ns_docs) == 1 and ns_docs[0]["metadata"]["name"] == "resbm", "k8s/ defines Namespace resbm")
    kdocs = [d for d in kdocs if d.get("kind") != "Namespace"]
    check_bundle(c, kdocs, dict(base_exp, dashboards=0))
    if rendered_defaults is not None:
        hmap = {(d["kind"], d["metadata"]["name"]): normalize(d) for d in rendered_defaults
                if d["__source__"] != "dashboards-configmap.yaml"}
        kmap = {(d["kind"], d["metadata"]["name"]): normalize(d) for d in kdocs}
        c.check(set(hmap) == set(kmap), "k8s/ has the same objects as the chart defaults")
        for key in sorted(set(hmap) & set(kmap)):
            same = hmap[key] == kmap[key]
            if not same:
                print("     helm: %s\n     k8s:  %s" % (json.dumps(hmap[key], sort_keys=True)[:3000], json.dumps(kmap[key], sort_keys=True)[:3000]))
            c.check(same, "k8s %s/%s equals the chart's default rendering (minus Helm-only metadata)" % key)

    print("== k8s/testing overlay (single-node hostPath, testing only)")
    tdir = os.path.join(repo, "k8s", "testing")
    with open(os.path.join(tdir, "kustomization.yaml"), encoding="utf-8") as f:
        tk = yaml.safe_load(f)
    c.check("../base" in tk.get("resources", []), "testing overlay builds on k8s/base")
    tdocs = []
    for n in sorted(os.listdir(tdir)):
        if n.endswith(".yaml") and n != "kustomization.yaml":
            with open(os.path.join(tdir, n), encoding="utf-8") as f:
                tdocs += load_docs(f.read(), n)
    pvs = [d for d in tdocs if d.get("kind") == "PersistentVolume"]
    c.check(any("hostPath" in p["spec"] and "ReadWriteMany" in p["spec"]["accessModes"] for p in pvs), "testing overlay has an RWX hostPath PV")
    sc = {p["spec"].get("storageClassName") for p in pvs}
    patched = json.dumps(tk.get("patches", []))
    c.check(all(s and s in patched for s in sc), "testing overlay patches the PVCs to the PVs' storage class %s" % sorted(sc))

    print("\n%d checks passed, %d failed" % (c.passed, c.failures))
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
