"""Pasted material for code prompts: small programs in several languages, configs, stack traces.

Snippets are assembled from random identifiers so no two are alike; what stays constant is
what real pastes share: indentation, brackets, keywords, `Error:` lines.
"""

from __future__ import annotations

import random

from training.router.common import pick

__all__ = ["LANGUAGES", "config", "one_liner", "snippet", "traceback"]

LANGUAGES = [
    "Python",
    "JavaScript",
    "TypeScript",
    "Go",
    "Rust",
    "C",
    "C++",
    "Java",
    "Bash",
    "SQL",
    "PHP",
    "Ruby",
    "C#",
    "Kotlin",
    "Swift",
    "Lua",
    "PowerShell",
]
_NOUNS = [
    "user",
    "order",
    "item",
    "config",
    "path",
    "record",
    "node",
    "event",
    "file",
    "row",
    "job",
    "price",
    "token",
    "cache",
    "result",
    "payload",
    "entry",
    "host",
    "count",
    "line",
]
_VERBS = ["load", "parse", "fetch", "update", "process", "compute", "build", "save", "filter", "merge", "sync", "check"]


def _ident(rng: random.Random, style: str = "snake") -> str:
    verb, noun = pick(rng, _VERBS), pick(rng, _NOUNS)
    return f"{verb}{noun.capitalize()}" if style == "camel" else f"{verb}_{noun}"


def _python(rng: random.Random) -> str:
    f, n, m = _ident(rng), pick(rng, _NOUNS), pick(rng, _NOUNS)
    body = pick(
        rng,
        [
            f"    with open(path) as fh:\n        data = json.load(fh)\n    return data['{n}s'][0]",
            f"    result = []\n    for {n} in {m}s:\n        if {n}.get('active'):\n            result.append({n}['id'])\n    return result",
            f"    total = 0\n    for i in range(len({n}s)):\n        total += {n}s[i].{m}\n    return total / len({n}s)",
            f'    conn = sqlite3.connect(db)\n    cur = conn.execute("SELECT * FROM {n}s WHERE id = " + str({m}_id))\n    return cur.fetchall()',
            f"    resp = requests.get(url, timeout=5)\n    resp.raise_for_status()\n    return [{n}['name'] for {n} in resp.json()]",
            f"    out = {{}}\n    for k in sorted({n}s, key=len):\n        out.setdefault(k[0], []).append(k)\n    return out",
        ],
    )
    args = pick(rng, ["path", f"{n}s", f"{m}s", "db, user_id", "url", "df"])
    return f"import json\n\ndef {f}({args}):\n{body}\n\nprint({f}({pick(rng, ['cfg', 'data', 'items'])}))"


def _javascript(rng: random.Random) -> str:
    f, n = _ident(rng, "camel"), pick(rng, _NOUNS)
    return pick(
        rng,
        [
            f"fs.readFile(file, 'utf8', function (err, text) {{\n  if (err) throw err;\n  parse(text, function (e, {n}) {{\n    save({n}, done);\n  }});\n}});",
            f"const {f} = async ({n}s) => {{\n  const out = [];\n  {n}s.forEach(async (x) => {{\n    out.push(await fetch(`/api/${{x.id}}`));\n  }});\n  return out;\n}};",
            f"export function {f}(list) {{\n  let seen = {{}};\n  for (var i = 0; i <= list.length; i++) {{\n    seen[list[i].id] = list[i];\n  }}\n  return Object.values(seen);\n}}",
            f"app.get('/{n}s/:id', (req, res) => {{\n  const q = 'SELECT * FROM {n}s WHERE id=' + req.params.id;\n  db.query(q, (e, r) => res.json(r));\n}});",
        ],
    )


def _go(rng: random.Random) -> str:
    n = pick(rng, _NOUNS)
    return pick(
        rng,
        [
            'func handler(w http.ResponseWriter, r *http.Request) {\n\tid := r.URL.Query().Get("id")\n\tcounts[id]++\n\tfmt.Fprintf(w, "%d", counts[id])\n}',
            f"func load{n.capitalize()}(path string) (*{n.capitalize()}, error) {{\n\tf, err := os.Open(path)\n\tif err != nil {{\n\t\treturn nil, err\n\t}}\n\tvar x {n.capitalize()}\n\tjson.NewDecoder(f).Decode(&x)\n\treturn &x, nil\n}}",
        ],
    )


def _rust(rng: random.Random) -> str:
    n = pick(rng, _NOUNS)
    return pick(
        rng,
        [
            'fn main() {\n    let s = String::from("hi");\n    let t = s;\n    println!("{} {}", s, t);\n}',
            f"fn longest(a: &str, b: &str) -> &str {{\n    if a.len() > b.len() {{ a }} else {{ b }}\n}}\n\nstruct {n.capitalize()} {{ name: String }}",
        ],
    )


def _c(rng: random.Random) -> str:
    return pick(
        rng,
        [
            "#include <stdlib.h>\n\nint *make(int n) {\n    int buf[n];\n    for (int i = 0; i < n; i++) buf[i] = i;\n    return buf;\n}",
            "int sum(int *a, int n) {\n    int s;\n    for (int i = 0; i <= n; i++) s += a[i];\n    return s;\n}",
            "#include <vector>\nstd::vector<int> primes(int n) {\n    std::vector<bool> sieve(n + 1, true);\n    // ...\n}",
        ],
    )


def _sql(rng: random.Random) -> str:
    n = pick(rng, _NOUNS)
    return pick(
        rng,
        [
            f"SELECT * FROM {n}s\nWHERE created_at > now() - interval '7 days'\n  AND status NOT IN (SELECT status FROM archived);",
            f"SELECT p.name, COUNT(*)\nFROM {n}s p LEFT JOIN tags t ON t.{n}_id = p.id\nWHERE t.label = 'new'\nGROUP BY p.name;",
            f"UPDATE {n}s SET status = 'done' WHERE id IN (SELECT {n}_id FROM jobs WHERE finished_at IS NOT NULL);",
        ],
    )


def _bash(rng: random.Random) -> str:
    return pick(
        rng,
        [
            "#!/bin/bash\nfor f in $(ls *.jpg); do\n  mv $f $(date +%Y%m%d)_$f\ndone",
            "#!/usr/bin/env bash\nset -e\nfor host in $(cat hosts.txt); do\n  ssh $host 'df -h /' | tail -1\ndone",
            "while read line; do\n  count=$((count+1))\ndone < input.txt\necho $count",
        ],
    )


def snippet(rng: random.Random, language: str | None = None) -> tuple[str, str]:
    """A (language, code) pair; the code may have a bug worth asking about."""
    makers = {
        "Python": _python,
        "JavaScript": _javascript,
        "Go": _go,
        "Rust": _rust,
        "C": _c,
        "SQL": _sql,
        "Bash": _bash,
    }
    language = language if language in makers else pick(rng, list(makers))
    return language, makers[language](rng)


def traceback(rng: random.Random) -> str:
    """A stack trace or compiler error as people paste them."""
    mod, n = pick(rng, ["app", "main", "server", "worker", "sync"]), pick(rng, _NOUNS)
    line = rng.randint(3, 400)
    return pick(
        rng,
        [
            f"Traceback (most recent call last):\n  File \"/srv/{mod}/{mod}.py\", line {line}, in <module>\n    import yaml\nModuleNotFoundError: No module named 'yaml'",
            f"Traceback (most recent call last):\n  File \"{mod}.py\", line {line}, in {_ident(rng)}\n    self.{n}.close()\nAttributeError: 'NoneType' object has no attribute 'close'",
            f"Traceback (most recent call last):\n  File \"{mod}.py\", line {line}, in <module>\nKeyError: '{n}_id'",
            f'Exception in thread "main" java.lang.NullPointerException\n\tat com.example.{n.capitalize()}Service.load({n.capitalize()}Service.java:{line})\n\tat com.example.Main.main(Main.java:12)',
            f"thread 'main' panicked at 'index out of bounds: the len is 3 but the index is 3', src/main.rs:{line}:5",
            f"error[E0382]: borrow of moved value: `{n}`\n --> src/main.rs:{line}:20",
            f"Uncaught TypeError: Cannot read properties of undefined (reading '{n}')\n    at {_ident(rng, 'camel')} (app.js:{line}:17)",
            f"panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation]\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:{line}",
            f"Error response from daemon: driver failed programming external connectivity on endpoint {mod}: Bind for 0.0.0.0:{rng.choice([80, 443, 8080])} failed: port is already allocated",
            f'nginx: [emerg] unknown directive "proxy_pas" in /etc/nginx/sites-enabled/{mod}:{line}',
            f'ERROR: relation "{n}s" does not exist\nLINE 1: SELECT * FROM {n}s WHERE id = 4;',
            f'npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree\nnpm ERR! peer react@"^17" from {n}-ui@2.1.0',
            f"segmentation fault (core dumped)\n$ gdb ./{mod}\n#0  0x0000555555555189 in main () at {mod}.c:{line}",
            f"{mod}.service: Main process exited, code=exited, status=203/EXEC\n{mod}.service: Failed with result 'exit-code'.",
        ],
    )


def one_liner(rng: random.Random) -> str:
    """A command or expression someone asks about."""
    return pick(
        rng,
        [
            "awk '{s+=$5} END {print s/NR}' data.txt",
            "const byId = Object.fromEntries(list.map(x => [x.id, x]));",
            "find . -name '*.log' -mtime +30 -exec rm {} +",
            "du -sh * | sort -h",
            "git rebase -i HEAD~3",
            "[x for x in range(100) if x % 3 == 0 and x % 5]",
            "tar -czvf backup.tgz --exclude=node_modules .",
            "ss -tulpn | grep :443",
            "xargs -P4 -n1 curl -O < urls.txt",
            "sed -i 's/\\r$//' *.sh",
            "lambda d: sorted(d.items(), key=lambda kv: -kv[1])[:10]",
            "docker system prune -af --volumes",
            "chmod -R u=rwX,go=rX /srv/share",
            "iptables -A INPUT -p tcp --dport 22 -j DROP",
            "0 4 * * 1 /opt/scripts/weekly.sh >> /var/log/weekly.log 2>&1",
            "^(?=.*\\d)(?=.*[a-z]).{8,}$",
            "SELECT DISTINCT ON (user_id) * FROM logins ORDER BY user_id, ts DESC;",
        ],
    )


def config(rng: random.Random) -> str:
    """A pasted config file."""
    app, port = (
        pick(rng, ["jellyfin", "nextcloud", "grafana", "homeassistant", "vaultwarden", "immich"]),
        rng.choice([3000, 8080, 8096, 8123]),
    )
    return pick(
        rng,
        [
            f'services:\n  {app}:\n    image: {app}/{app}:latest\n    ports:\n      - "{port}:{port}"\n    volumes:\n      - ./data:/data\n    restart: unless-stopped',
            f"server {{\n    listen 443 ssl;\n    server_name {app}.home.lan;\n    location / {{\n        proxy_pass http://127.0.0.1:{port};\n    }}\n}}",
            f"[Unit]\nDescription={app}\nAfter=network.target\n\n[Service]\nExecStart=/usr/bin/{app} --port {port}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target",
            f'FROM python:3.12\nCOPY . /src\nRUN pip install -r /src/requirements.txt\nEXPOSE {port}\nCMD ["python", "/src/main.py"]',
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: {app}\n          image: {app}:latest",
        ],
    )
