"""`code` prompts: write, fix, explain, review, refactor or translate code; shell, SQL, regex, config.

Many carry no code at all ("bash one-liner to count lines", "regex for IPv4"), and many are
in other languages ("¿Cómo hago un bucle for en Python...?"), so the model must learn the asks,
not just the look of pasted code.
"""

from __future__ import annotations

import random

from training.router.common import Gen, pick
from training.router.snippets import LANGUAGES, config, one_liner, snippet, traceback

__all__ = ["GENERATORS", "TASKS"]

TASKS = [
    "returns the n-th prime number",
    "checks whether two strings are anagrams of each other",
    "parses a CSV file and returns the average of the third column",
    "merges two sorted lists",
    "reverses a linked list",
    "renames all photos in a folder by their EXIF date",
    "counts word frequencies in a text file",
    "finds duplicate files by hash",
    "retries an HTTP request with exponential backoff",
    "flattens a nested dict",
    "validates an email address",
    "converts Roman numerals to integers",
    "implements an LRU cache",
    "watches a directory and uploads new files to S3",
    "reads a YAML config and validates required keys",
    "pings every host in a subnet and prints the ones that answer",
    "deduplicates a list while keeping order",
    "computes the SHA-256 of a large file in chunks",
    "sends me a Telegram message when disk usage is above 90%",
    "parses nginx access logs and prints the top 10 IPs",
    "implements binary search",
    "does a topological sort",
    "rate-limits calls to a function",
    "groups a list of dicts by a key",
    "scrapes the titles from a web page",
    "converts a JSON file to CSV",
    "generates a random password with at least one digit and one symbol",
    "backs up a PostgreSQL database and keeps the last 7 dumps",
    "resizes images in parallel",
    "reads sensor data from MQTT and writes it to InfluxDB",
    "chunks a list into batches of n",
    "computes the Levenshtein distance between two strings",
    "checks SSL certificate expiry dates for a list of domains",
]
_WRITE = [
    "Write a {lang} function that {task}.",
    "{lang} script that {task}",
    "Can you write me a {lang} program that {task}?",
    "write a function in {lang} that {task}, with type hints",
    "Implement something in {lang} that {task}.",
    "I need a small {lang} tool that {task}. Add error handling.",
    "how would I write code that {task} in {lang}?",
    "Give me {lang} code that {task}",
    "Write a class in {lang} that {task}, plus a usage example.",
]
_FIX = [
    "Why does this crash?\n\n{code}",
    "This doesn't work, can you fix it?\n\n```\n{code}\n```",
    "I'm getting this error:\n\n{trace}\n\nhow do I fix it?",
    "{trace}\n\nwhy??",
    "fix this pls\n\n{code}",
    "this {lang} works locally but fails in the container, no idea why:\n\n{code}",
    "getting this when I run it:\n{trace}\n\ncode:\n{code}",
    "what's the bug here?\n```\n{code}\n```",
    "{trace}\n\nany idea what causes this?",
    "The following {lang} gives the wrong result for an empty list:\n\n{code}",
]
_EXPLAIN = [
    "I inherited this {lang} and don't understand it, what is it doing?\n\n{code}",
    "what is `{one}` supposed to do?",
    "explain this command: {one}",
    "Can you walk me through what this code does?\n\n```\n{code}\n```",
    "What does `{one}` mean?",
    "ELI5 this snippet:\n{code}",
]
_REVIEW = [
    "Please review this before I merge it. Edge cases? Style?\n\n{code}",
    "Could an attacker abuse this endpoint? What would you change?\n\n{code}",
    "Code review please, I'm a beginner:\n\n```\n{code}\n```",
    "Is there a race condition here?\n\n{code}",
    "Any obvious security holes in this script?\n\n{code}",
]
_REFACTOR = [
    "Convert these callbacks to promises:\n\n{code}",
    "make this faster:\n\n{code}",
    "this loop is way too slow on big inputs, vectorize it?\n\n{code}",
    "Clean this up and add type hints:\n\n{code}",
    "Rewrite this to be more idiomatic:\n```\n{code}\n```",
    "Add unit tests for this function:\n\n{code}",
    "Add docstrings and error handling to this:\n\n{code}",
    "split this into smaller functions:\n{code}",
]
_TRANSLATE = [
    "Rewrite this in {lang2}, keeping the same behaviour:\n\n{code}",
    "port this to {lang2} please\n\n```\n{code}\n```",
    "How would this look in {lang2}?\n\n{code}",
    "convert this {lang} code to {lang2}:\n{code}",
]
_SHELL = [
    "one-liner to find the 5 largest directories under /home",
    "how do I find which process is using port {port}?",
    "command to list the 10 biggest files in /var",
    "how do I remove a secret I accidentally pushed to git history?",
    "git: undo the last commit but keep the changes",
    "how to rsync a folder to my NAS over ssh, excluding node_modules",
    "jq filter to get the ids of all items whose status is failed",
    "how do I tail logs of a docker container",
    "powershell command to list services that are stopped",
    "curl command to POST json with a bearer token",
    "how do I give group www-data write access to /var/www recursively",
    "ffmpeg command to convert mkv to mp4 without re-encoding",
    "how to squash my last 3 commits",
    "sed command to replace foo with bar in all .txt files",
    "zfs command to snapshot pool tank recursively",
    "how do I mount an NFS share at boot on ubuntu",
    "grep for lines containing ERROR but not DEBUG, with 2 lines of context",
    "crontab line to run backup.sh every day at 3am",
    "how to check which kernel modules are loaded for my nvidia gpu",
    "ssh: how do I set up key-based login and disable passwords?",
    "tmux: how do I split a pane vertically?",
]
_REGEX = [
    "regex for US phone numbers with optional area code",
    "regex to match times like 23:59",
    "regex for a UK postcode",
    "regex that matches a hex color like #fff or #a1b2c3",
    "regex to extract the domain from a URL",
    "Write a regex that matches words with a double letter",
    "regex to validate a semantic version like 1.2.3-beta",
    "regular expression for lines that start with a timestamp [12:34:56]",
    "regex for MAC addresses",
]
_CONFIG = [
    "Write a docker-compose.yml for {app} with {need}.",
    "systemd service that runs my node app as user web and logs to journald",
    "nginx reverse proxy config for {app} on port {port} with websockets",
    "helm values for {app} with an ingress and TLS",
    "Kubernetes CronJob that runs a backup container every night at 2",
    "ansible role that hardens sshd on debian",
    "Home Assistant script in YAML that dims the living room lights to 30% after 22:00",
    "Caddyfile for {app} with automatic https",
    "CMake file for a library and a test executable",
    "GitHub Actions workflow that runs pytest on every push",
    "Dockerfile for a {lang} app, multi-stage, small image",
    "Prometheus alert rule for when a node is down for 5 minutes",
    "terraform config for a proxmox LXC container running {app}",
    "wireguard config for a road warrior client and my home server",
    "logrotate config for /var/log/{app}/*.log, keep 14 days compressed",
    "My config isn't working, what's wrong?\n\n{cfg}",
    "{cfg}\n\nthis container keeps restarting, any idea why?",
    "how do I add a healthcheck to this compose file?\n\n{cfg}",
    "can you convert this to a podman quadlet?\n\n{cfg}",
    "fail2ban jail for {app} login failures",
    "HAProxy config that balances two backends on port {port}",
]
_SQL = [
    "Write a SQL query to list {n}s that have no orders in the last 30 days.",
    "SQL for the second highest salary per department",
    "query that counts signups per week in 2024 from a users table",
    "how do I pivot rows into columns in Postgres?",
    "Write a query to find {n}s who bought in March but not in April.",
    "Join three tables in MySQL: users, orders, products, total per user",
    "Postgres query: monthly active users per month for the last year from a logins(user_id, ts) table.",
    "SQL to find duplicate emails in a users table",
    "how do I write a query that gets the latest row per user?",
    "mysql query to delete rows older than 90 days in batches",
    "why is this query slow?\n\n{code}",
    "SQLite: how do I add a column with a default value to an existing table?",
]
_CONCEPT = [
    "In TypeScript, what's the difference between an interface and a type alias?",
    "what's the difference between a process and a thread in Python, and when should I use asyncio?",
    "How do Rust lifetimes work in function signatures? Show an example.",
    "When should I use a list vs a tuple in Python?",
    "how do I handle errors properly in Go?",
    "What's the difference between let, const and var in JavaScript?",
    "How do I read a file line by line in {lang}?",
    "How do I make an HTTP request in {lang}?",
    "how to parse command line arguments in {lang}",
    "what is a closure in JavaScript, with an example?",
    "how do I mock a database call in pytest?",
    "How does Python's GIL affect multithreaded code?",
    "how do I center a div with flexbox",
    "What's the idiomatic way to iterate over a map in Go?",
]
_FOREIGN = [
    "Écris une requête SQL qui compte les commandes par client.",
    "Schreib eine SQL-Abfrage, die doppelte E-Mails findet.",
    "¿Cómo hago una consulta SQL que sume las ventas por mes?",
    "写一个正则表达式匹配中国大陆手机号。",
    "Comment parcourir un dictionnaire en {lang} ?",
    "Was ist der Unterschied zwischen einer Liste und einem Tupel in Python?",
    "Explícame qué hace este código línea por línea:\n\n{code}",
    "这段{lang}代码是什么意思？\n\n{code}",
    "Come faccio a leggere un file JSON in {lang}?",
    "Como corrigir este erro?\n\n{trace}",
    "¿Cómo ordeno una lista de tuplas por el segundo elemento en {lang}?",
    "Qu'est-ce que fait cette commande ? `{one}`",
    "Écris une fonction {lang} qui {task_fr}.",
    "Schreib ein Python-Skript, das alle PDF-Dateien in einem Ordner zu einer Datei zusammenfügt.",
    "用{lang}写一个函数，统计一个文本文件里每个单词出现的次数。",
    "Wie kann ich in {lang} eine Datei Zeile für Zeile lesen?",
    "Escribe una función en {lang} que {task_es}.",
    "Mein Skript wirft diesen Fehler, was ist falsch?\n\n{trace}",
    "J'ai cette erreur, comment la corriger ?\n\n{trace}",
    "¿Por qué este código no funciona?\n\n{code}",
    "用SQL查询每个用户最近一次登录的记录",
    "Scrivi uno script Python che rinomina tutti i file di una cartella.",
    "Como faço um loop em {lang} para ler um arquivo CSV?",
    "Corrige ce script bash :\n\n{code}",
    "帮我写一个docker-compose.yml，运行{app}并映射端口{port}",
    "Kannst du diesen {lang}-Code refaktorieren?\n\n{code}",
    "Comment écrire une regex qui valide une adresse e-mail ?",
    "¿Qué hace este comando? {one}",
    "这段代码为什么报错？\n\n{trace}",
    "Erkläre mir diese SQL-Abfrage:\n\n{code}",
    "Comment je fais un cron qui lance mon script toutes les heures ?",
    "Necesito un Dockerfile para una app de {lang}.",
    "Wie richte ich einen nginx Reverse Proxy für {app} ein?",
    "怎么用git撤销上一次提交但保留修改？",
]
_TASKS_FR = [
    "vérifie si un nombre est premier",
    "lit un fichier CSV et calcule la moyenne",
    "trie une liste de dictionnaires par date",
]
_TASKS_ES = [
    "calcule el factorial de un número",
    "lea un archivo JSON y lo imprima",
    "elimine los duplicados de una lista",
]
_APPS = [
    "jellyfin",
    "nextcloud",
    "grafana",
    "vaultwarden",
    "immich",
    "paperless-ngx",
    "pihole",
    "gitea",
    "redis",
    "postgres",
]
_NEEDS = [
    "hardware transcoding and media at /mnt/media read-only",
    "a postgres sidecar and a named volume",
    "a healthcheck and restart policy",
    "GPU access",
    "traefik labels and an internal network",
]


_INTL = [  # (templates, tasks) per language; {lang} is a programming language
    (
        [
            "Schreib mir eine {lang}-Funktion, die {t}.",
            "Wie kann ich in {lang} {t2}?",
            "Ich brauche ein {lang}-Skript, das {t}.",
            "Kannst du mir zeigen, wie man in {lang} {t2}?",
            "Mein {lang}-Code funktioniert nicht, er soll {t2}:\n\n{code}",
        ],
        [
            "prüft, ob eine Zahl eine Primzahl ist",
            "eine CSV-Datei einliest und die Summe einer Spalte berechnet",
            "alle Dateien in einem Ordner umbenennt",
            "doppelte Einträge aus einer Liste entfernt",
            "eine JSON-API abfragt",
        ],
        [
            "eine Datei zeilenweise lesen",
            "eine Liste nach Datum sortieren",
            "einen HTTP-Request senden",
            "ein Verzeichnis rekursiv durchsuchen",
        ],
    ),
    (
        [
            "Écris une fonction {lang} qui {t}.",
            "Comment faire pour {t2} en {lang} ?",
            "J'ai besoin d'un script {lang} qui {t}.",
            "Peux-tu corriger ce code {lang} ? Il devrait {t2}.\n\n{code}",
            "Montre-moi comment {t2} avec {lang}.",
        ],
        [
            "vérifie si une chaîne est un palindrome",
            "lit un fichier JSON et affiche les clés",
            "envoie un e-mail tous les matins",
            "supprime les fichiers de plus de 30 jours",
            "calcule la moyenne d'une colonne",
        ],
        [
            "lire un fichier ligne par ligne",
            "trier une liste de dictionnaires",
            "faire une requête HTTP",
            "parcourir un dossier",
        ],
    ),
    (
        [
            "Escribe una función en {lang} que {t}.",
            "¿Cómo puedo {t2} en {lang}?",
            "Necesito un script de {lang} que {t}.",
            "Mi código de {lang} falla, debería {t2}:\n\n{code}",
            "Enséñame a {t2} con {lang}.",
        ],
        [
            "convierta grados Celsius a Fahrenheit",
            "cuente las palabras de un archivo",
            "descargue una página web",
            "valide un número de teléfono",
            "ordene una lista de productos por precio",
        ],
        ["leer un archivo CSV", "conectar a una base de datos MySQL", "crear una API REST", "recorrer un diccionario"],
    ),
    (
        ["Scrivi una funzione {lang} che {t}.", "Come posso {t2} in {lang}?", "Mi serve uno script {lang} che {t}."],
        ["calcola il fattoriale", "legge un file di testo e conta le righe", "rinomina le foto per data"],
        ["leggere un file JSON", "ordinare una lista", "fare una richiesta HTTP"],
    ),
    (
        [
            "Escreva uma função em {lang} que {t}.",
            "Como faço para {t2} em {lang}?",
            "Preciso de um script {lang} que {t}.",
        ],
        ["verifica se um número é par", "lê um arquivo CSV", "envia uma notificação quando o disco enche"],
        ["ler um arquivo linha por linha", "ordenar uma lista", "chamar uma API"],
    ),
    (
        [
            "用{lang}写一个函数，{t}。",
            "怎么用{lang}{t2}？",
            "帮我写一个{lang}脚本，{t}。",
            "这段{lang}代码有什么问题？它应该{t2}。\n\n{code}",
        ],
        ["判断一个数是不是质数", "读取CSV文件并计算平均值", "批量重命名文件夹里的图片", "把JSON转换成CSV"],
        ["读取文件", "发送HTTP请求", "连接数据库", "对列表排序"],
    ),
]


_ARTIFACTS = [
    "Kubernetes Deployment and Service",
    "Kubernetes StatefulSet",
    "k8s Ingress",
    "ConfigMap and Secret",
    "Helm chart",
    "Home Assistant automation",
    "Home Assistant template sensor",
    "Node-RED flow",
    "nginx server block",
    "Apache vhost",
    "systemd unit",
    "systemd timer",
    "systemd mount unit",
    "fstab entry",
    "udev rule",
    "netplan config",
    "nftables ruleset",
    "iptables rules",
    "WireGuard config",
    "Traefik dynamic config",
    "Caddyfile",
    "HAProxy config",
    "Prometheus scrape config",
    "Alertmanager route",
    "promtail config",
    "Ansible playbook",
    "Ansible inventory",
    "Terraform module",
    "cloud-init user-data",
    "Dockerfile",
    "docker-compose.yml",
    "GitHub Actions workflow",
    "GitLab CI pipeline",
    "Jenkinsfile",
    "Makefile",
    "CMakeLists.txt",
    "pre-commit config",
    "tsconfig.json",
    "pyproject.toml",
    "logrotate rule",
    "crontab entry",
    "sshd_config",
    "Samba share definition",
    "NFS exports line",
    "Proxmox LXC config",
    "zfs snapshot policy",
    "rclone config",
    "restic backup script",
]
_SUBJECTS = [
    "redis",
    "a Flask app",
    "Grafana",
    "a Minecraft server",
    "Pi-hole",
    "Jellyfin",
    "a Go API",
    "Postgres",
    "my NAS",
    "the garage door sensor",
    "the living room lights",
    "a static site",
    "Mosquitto",
    "Uptime Kuma",
    "a backup job",
    "Syncthing",
    "a Discord bot",
    "Nextcloud",
    "the porch camera",
    "Zigbee2MQTT",
    "an rsync job",
    "a Node.js worker",
]
_CONSTRAINTS = [
    "with 2 replicas and a readiness probe",
    "that restarts on failure",
    "only when someone is home",
    "at sunset, off at 23:00",
    "every 15 minutes",
    "with TLS via Let's Encrypt",
    "with a read-only root filesystem",
    "limited to 512Mi of memory",
    "on a 1Gi persistent volume",
    "behind basic auth",
    "that runs as a non-root user",
    "listening on port 8443",
    "with logs kept for 14 days",
    "and a healthcheck",
    "for arm64 and amd64",
    "that only allows my LAN 192.168.1.0/24",
    "triggered when the motion sensor is on for 5 minutes",
    "",
]
_VERBS = [
    "Write a {a} for {s} {c}",
    "{a} for {s} {c}",
    "Can you give me a {a} for {s} {c}?",
    "I need a {a} that runs {s} {c}",
    "help me write the {a} for {s} {c}",
    "Create a {a} for {s}, {c}",
    "what would the {a} look like for {s} {c}?",
    "generate a {a} to deploy {s} {c}",
]


_SYNTAX = [
    ("the `?` operator", "Rust"),
    ("`yield`", "Python"),
    ("`defer`", "Go"),
    ("`===`", "JavaScript"),
    ("`&&`", "bash"),
    ("`:=`", "Python"),
    ("`static`", "Java"),
    ("`async`", "C#"),
    ("`lateinit`", "Kotlin"),
    ("`#[derive]`", "Rust"),
    ("`*args`", "Python"),
    ("`?.`", "TypeScript"),
    ("`volatile`", "C"),
    ("`set -e`", "bash"),
    ("`@property`", "Python"),
]
_CONCEPTS = [
    "a closure",
    "a goroutine",
    "a decorator",
    "a trait",
    "a pointer",
    "a generator",
    "an enum",
    "a lambda",
    "a monad",
    "dependency injection",
    "a race condition",
    "a mutex",
    "recursion",
    "a hash map",
    "an interface",
]


def short_code(rng: random.Random) -> str:
    """Short questions about code: short, but not a fact a small model should guess."""
    syntax, lang = pick(rng, _SYNTAX)
    concept = pick(rng, _CONCEPTS)
    return pick(
        rng,
        [
            f"What does {syntax} do in {lang}?",
            f"what is {syntax} in {lang} for?",
            f"{syntax} in {lang}?",
            f"what's {concept} in {pick(rng, LANGUAGES)}?",
            f"example of {concept} in {pick(rng, LANGUAGES)}",
            f"when to use {concept}?",
            f"{concept} vs {pick(rng, _CONCEPTS)}?",
            f"Was macht {syntax} in {lang}?",
            f"¿Qué hace {syntax} en {lang}?",
            f"À quoi sert {syntax} en {lang} ?",
            f"{lang}里的{syntax}是什么意思？",
        ],
    )


def config_ask(rng: random.Random) -> str:
    """A config or infrastructure file, composed: artifact x subject x constraint."""
    return (
        pick(rng, _VERBS)
        .format(a=pick(rng, _ARTIFACTS), s=pick(rng, _SUBJECTS), c=pick(rng, _CONSTRAINTS))
        .replace(" ?", "?")
        .strip()
    )


def code_intl(rng: random.Random) -> str:
    templates, tasks, tasks2 = pick(rng, _INTL)
    lang, code = snippet(rng)
    return pick(rng, templates).format(
        lang=lang if rng.random() < 0.6 else pick(rng, LANGUAGES), t=pick(rng, tasks), t2=pick(rng, tasks2), code=code
    )


def _slots(rng: random.Random) -> dict[str, str]:
    lang, code = snippet(rng)
    return {
        "lang": lang if rng.random() < 0.7 else pick(rng, LANGUAGES),
        "lang2": pick(rng, LANGUAGES),
        "code": code,
        "trace": traceback(rng),
        "one": one_liner(rng),
        "cfg": config(rng),
        "task": pick(rng, TASKS),
        "task_fr": pick(rng, _TASKS_FR),
        "task_es": pick(rng, _TASKS_ES),
        "app": pick(rng, _APPS),
        "need": pick(rng, _NEEDS),
        "port": str(rng.choice([22, 80, 443, 3000, 5432, 8080, 9090])),
        "n": pick(rng, ["product", "country", "customer"]),
    }


def _from(table: list[str]) -> Gen:
    def gen(rng: random.Random) -> str:
        return pick(rng, table).format(**_slots(rng))

    return gen


_ERRORS = [
    "ModuleNotFoundError: No module named 'requests'",
    "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
    "permission denied (publickey)",
    "Error: listen EADDRINUSE: address already in use",
    "KeyError: 'id'",
    "SyntaxError: unexpected EOF while parsing",
    "fatal: not a git repository",
    "exec format error",
    "ERROR 1064 (42000): You have an error in your SQL syntax",
    "undefined reference to `main'",
    "NullPointerException",
    "CORS error in the browser console",
    "OOMKilled",
    "Segmentation fault",
]


def followup_code(rng: random.Random) -> str:
    """An ask that names what to change in code the conversation does not show."""
    return pick(
        rng,
        [
            "now have it read the list of hosts from a file instead",
            "add a --verbose flag and log to a file",
            "it breaks on filenames with spaces, can you fix that",
            "now make it async and add retries",
            "can you add unit tests for that function",
            "it throws a KeyError when the field is missing, handle that",
            "also group the result by month and sort by the total",
            "port it to TypeScript",
            "make the script idempotent so I can run it twice",
            "add a healthcheck and a memory limit to the service",
            "can the regex also accept lowercase letters?",
            "wrap that in a function that takes the path as an argument",
            f"make it retry {rng.randint(2, 9)} times and wait {rng.randint(1, 30)} seconds between tries",
            f"only keep the last {rng.randint(3, 30)} backups",
            f"change the port to {rng.randint(1025, 9999)}",
            f"it should only match years from 19{rng.randint(10, 99)} to 20{rng.randint(10, 30)}",
            f"limit it to {rng.randint(5, 100)} rows and include the ones with 0 orders too",
            f"it says {pick(rng, _ERRORS)}",
            f"now I get {pick(rng, _ERRORS)} on line {rng.randint(2, 200)}",
            f"run it every {rng.randint(2, 59)} minutes instead",
            f"what if the file is bigger than {rng.randint(2, 64)} GB?",
            "can you change it so that the results are written to a csv as well, and skip rows where the amount is 0?",
            "ok that works, but can you change it so it also handles the case where the list is empty and returns None?",
            f"nice. could it also show the totals per year for {rng.randint(2015, 2024)} and {rng.randint(2015, 2024)} side by side, sorted descending?",
            f"that works on my laptop but on the server it fails after about {rng.randint(2, 90)} seconds, what should I change?",
            "can you change it so the config path comes from an environment variable and falls back to the default?",
        ],
    )


GENERATORS: list[tuple[float, Gen]] = [
    (3.0, _from(_WRITE)),
    (2.5, _from(_FIX)),
    (1.5, _from(_EXPLAIN)),
    (1.2, _from(_REVIEW)),
    (1.5, _from(_REFACTOR)),
    (1.0, _from(_TRANSLATE)),
    (2.0, _from(_SHELL)),
    (1.0, _from(_REGEX)),
    (2.5, _from(_CONFIG)),
    (1.0, _from(_SQL)),
    (1.5, _from(_CONCEPT)),
    (2.0, _from(_FOREIGN)),
    (2.0, code_intl),
    (2.5, config_ask),
    (1.5, short_code),
    (0.6, followup_code),
]


_ENV = [
    " I'm on Ubuntu {v}.04 with Python 3.{m}.",
    " The box has {g} GB of RAM and {c} cores.",
    " Port {p} is already taken.",
    " It runs on a Raspberry Pi {c} with {g}GB.",
    " We use Postgres {m} and Node {n}.",
    " Target is Debian {m}, kernel 6.{c}.",
    " It has to handle about {k}k requests a day.",
    " The files are around {g}00 MB each.",
    " Keep it under {k}0 lines.",
    " My UPS is an APC {k}00VA model.",
    " The volume should be {g}Gi.",
    " Run it at {c}:{m}0 every night.",
    " Dates look like 20{m}-0{c}-1{c}.",
    " I only need the rows from 20{m}.",
    " Timeout should be {k} seconds.",
]


def environment(rng: random.Random) -> str:
    """A detail about versions, sizes or times, as people add to code asks (digits are not math)."""
    return pick(rng, _ENV).format(
        v=rng.choice([18, 20, 22, 24]),
        m=rng.randint(1, 24),
        g=rng.choice([2, 4, 8, 16, 32, 64]),
        c=rng.randint(1, 9),
        p=rng.choice([80, 443, 3000, 8080, 8443, 9000]),
        n=rng.choice([16, 18, 20, 22]),
        k=rng.randint(2, 90),
    )
