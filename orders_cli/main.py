"""The `orders` command: run the API and the projector, migrate, manage the local stack."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from app.kernel.settings import Settings

T = TypeVar("T")
main = typer.Typer(help="CQRS read-scaling platform for order systems.", no_args_is_help=True)
stack_cli = typer.Typer(help="The local PostgreSQL + Redis + Elasticsearch stack.")
main.add_typer(stack_cli, name="stack")


def _settings() -> Settings:
    """The stack's settings, or one line on stderr saying what is missing and how to set it."""
    from pydantic import ValidationError

    from app.kernel.settings import ENV_FILE_VARIABLE, PROJECT_ENV_FILE, env_file, load_settings

    found = env_file()
    if found is not None and not found.is_file():
        _fail(f"{ENV_FILE_VARIABLE} names {found}, which does not exist: point it at the "
              f"stack's env file (`orders stack up` writes .stack/env in the project)")
    try:
        return load_settings()
    except ValidationError as exc:
        unreadable = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()
                      if not e["loc"]]
        if unreadable:  # a secret's file (ORDERS_..._FILE) that cannot be read
            _fail("; ".join(unreadable))
        missing = ", ".join(str(e["loc"][0]).upper() for e in exc.errors())
        where = found or f"./.stack/env or {PROJECT_ENV_FILE}"
        _fail(f"{missing} not set and not in {where}: run `make stack` in the project, "
              f"export {missing}, or set {ENV_FILE_VARIABLE} to the stack's env file")


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run a one-shot command; a service that does not answer, or refuses this process's
    credential, is one line, not a traceback."""
    import asyncpg

    from app.kernel.credentials import CredentialsRefused

    try:
        return asyncio.run(work)
    except CredentialsRefused as exc:
        _fail(str(exc))
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
        _fail(f"a service did not answer ({exc}): is the stack up? `orders stack up` starts it")


def _refusal_is_one_line(work: Coroutine[Any, Any, T]) -> T:
    """Run a long-lived process; a refused credential is one line, other errors its own."""
    from app.kernel.credentials import CredentialsRefused

    try:
        return asyncio.run(work)
    except CredentialsRefused as exc:
        _fail(str(exc))


def _check_credentials(settings: Settings, kind: Any) -> None:
    """Stop with one line when a service refuses the credential of a process of `kind`
    (before a server or a loop starts, where it would be a traceback or a restart loop)."""
    from app.kernel.bootstrap import connect

    async def check() -> None:
        await (await connect(settings, kind)).close()

    _run(check())


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@main.command()
def api(
    role: Annotated[str, typer.Option(help="all | read | write")] = "all",
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="processes sharing the port")] = 1,
) -> None:
    """Serve the HTTP API (write and/or read routers)."""
    import os

    import uvicorn

    if role not in ("all", "read", "write"):
        raise typer.BadParameter("role must be all, read or write")
    from app.logs import setup_logging

    os.environ["ORDERS_API_ROLE"] = role
    _check_credentials(_settings(), "api")
    setup_logging()
    uvicorn.run("app.asgi:create", factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False, proxy_headers=False,
                timeout_graceful_shutdown=10)


@main.command()
def run(port: int = 8000, metrics_port: Annotated[int, typer.Option(
        help="the projector's Prometheus port, 0 for none")] = 9464) -> None:
    """Run the API and the projector together until Ctrl-C (what `make run` does).

    A child that dies is logged with its exit status and restarted with back-off; the
    others stay up.
    """
    import sys

    from app.logs import setup_logging
    from orders_cli.supervisor import Child, supervise

    setup_logging()
    exe = [sys.executable, "-m", "orders_cli.main"]  # this interpreter, whatever PATH holds
    children = [Child("api", [*exe, "api", "--port", str(port)])]
    metrics = ["--metrics-port", str(metrics_port)]
    children += [Child(extra[0], [*exe, *extra, *(metrics if extra[0] == "project" else [])])
                 for extra in RUN_WITH_API]
    typer.echo(f"API:        http://127.0.0.1:{port}/docs\n"
               f"Dashboard:  http://127.0.0.1:{port}/\nCtrl-C stops everything.")
    supervise(children)


# Processes `orders run` starts beside the API.
RUN_WITH_API: list[list[str]] = [["project"]]


@main.command()
def project(
    batch_size: int = 1000,
    skip_poison: Annotated[bool, typer.Option(
        help="dead-letter a poison event and go on, instead of stopping")] = False,
    metrics_port: Annotated[int, typer.Option(help="Prometheus port, 0 for none")] = 9464,
) -> None:
    """Follow the event log into Elasticsearch and Redis (run two for a hot standby)."""

    from app.logs import setup_logging
    from projectors.process import serve
    from projectors.runner import ProjectionConfig

    setup_logging()
    config = ProjectionConfig(batch_size=batch_size, skip_poison=skip_poison)
    # Its signal handlers go in first, then the clients (a refused credential stops it there).
    _refusal_is_one_line(serve(_settings(), config, metrics_port or None))


@main.command()
def status() -> None:
    """Each projection's checkpoint, the log head, lag and state."""
    import json

    typer.echo(json.dumps(_run(_status(_settings())), indent=2, default=str))


async def _status(settings: Settings) -> list[dict[str, Any]]:
    from app.kernel.bootstrap import clients
    from app.read.projections import projection_status

    async with clients(settings, "cli") as c:
        return await projection_status(c.pool, c.es, c.redis, settings.search_alias,
                                       settings.dashboard_namespace)


@main.command()
def demo(
    orders: Annotated[int, typer.Option(help="how many orders to write")] = 10_000,
    days: Annotated[int, typer.Option(help="spread them over this many past days")] = 7,
    seed: int = 42,
) -> None:
    """Write realistic demo orders fast (bulk path of the write store)."""
    _run(_demo(_settings(), orders, days, seed))


async def _demo(settings: Settings, orders: int, days: int, seed: int) -> None:
    import time

    from rich.progress import Progress

    from app.demo import generate
    from app.kernel.bootstrap import open_pool
    from app.write.store import OrderStore

    pool = await open_pool(settings, "cli")
    started = time.perf_counter()
    try:
        with Progress() as bar:
            task = bar.add_task("events", total=int(orders * 1.57))
            events = await generate(OrderStore(pool), orders, days=days, seed=seed,
                                    progress=lambda n: bar.advance(task, n))
    finally:
        await pool.close()
    elapsed = time.perf_counter() - started
    typer.echo(f"{orders} orders, {events} events in {elapsed:.1f}s "
               f"({events / elapsed:,.0f} events/s)")


@contextlib.contextmanager
def _progress_bar(title: str) -> Iterator[Callable[[Any, int], None]]:
    """A terminal progress bar fed with a rebuild's progress and the log's length."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>8,.0f} ev/s docs {task.fields[docs]:,}"),
               TimeRemainingColumn())
    started = time.monotonic()
    with Progress(*columns) as bar:
        task = bar.add_task(title, total=None, rate=0.0, docs=0)

        def show(p: Any, total: int) -> None:
            rate = p.events_read / max(time.monotonic() - started, 1e-6)
            bar.update(task, total=total, completed=p.events_read, docs=p.docs_written,
                       rate=rate)

        yield show


@main.command()
def reindex(
    target: Annotated[str, typer.Argument(help="search | dashboard")],
    restart: Annotated[bool, typer.Option(
        help="abandon an unfinished rebuild (drop its half-built target) and start over")] = False,
    keep_old: Annotated[bool, typer.Option(help="keep the replaced index or keys")] = False,
) -> None:
    """Rebuild a read model from the log with no downtime (resumes an unfinished one)."""
    if target not in ("search", "dashboard"):
        raise typer.BadParameter("target must be search or dashboard")
    from app.kernel.runtime import tune_gc
    from projectors.process import run_rebuild

    tune_gc()
    with _progress_bar(f"rebuild {target}") as show:
        job = _refusal_is_one_line(run_rebuild(_settings(), target,  # type: ignore[arg-type]
                                               restart=restart, keep_old=keep_old,
                                               progress=show))
    typer.echo(f"{target} rebuilt: {job['old_target']} -> {job['new_target']}, "
               f"{job['events_read']} events read, {job['docs_written']} documents written")


@main.command()
def migrate() -> None:
    """Apply pending SQL migrations (safe to run twice)."""
    from infra.migrate import migrate as run_migrations
    from infra.migrate import role_passwords

    settings = _settings()
    applied = _run(run_migrations(settings.database_url, role_passwords(settings),
                                  settings.partitions))
    typer.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


CLUSTER_OPTION = typer.Option(
    "--cluster", help="the cluster stack: three Elasticsearch nodes and a six-node Redis "
                      "Cluster beside PostgreSQL (URLs in .stack/cluster.env)")


@stack_cli.command("up")
def stack_up(cluster: Annotated[bool, CLUSTER_OPTION] = False) -> None:
    """Start PostgreSQL, Redis and Elasticsearch (reusing running ones)."""
    from infra import stack

    try:
        stack.up(cluster=cluster)
    except stack.StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@stack_cli.command("down")
def stack_down(cluster: Annotated[bool, CLUSTER_OPTION] = False) -> None:
    """Stop the stack; data stays for the next `up`."""
    from infra import stack

    stack.down(cluster=cluster)


@stack_cli.command("status")
def stack_status(cluster: Annotated[bool, CLUSTER_OPTION] = False) -> None:
    """Which services answer."""
    from infra import stack

    for name, ok in stack.status(cluster=cluster).items():
        typer.echo(f"{name:14} {'up' if ok else 'down'}")


if __name__ == "__main__":
    main()
