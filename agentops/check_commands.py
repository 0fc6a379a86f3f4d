"""`agentops report` and `agentops check run`: ResilienceChecks from a terminal or a CI job.

The Kubernetes side is the operator's own client (`KubeClient.call`: one blocking
request, a 4xx/5xx answer raised as KubeError with the API server's message), which
is fine in a CLI. A check is applied with server-side apply under the field manager
`agentops-cli`, so running `check run` again with an edited file replaces what the
CLI set before (an experiment removed from the file is removed from the check) while
fields other managers own are left alone. The same apply writes a fresh value into
the agentops.dev/run-requested annotation, which asks the operator for a new run.

Following polls the check once a second (a run lasts minutes; a watch would save
little and needs reconnect logic of its own), retrying failed reads with a backoff
until the timeout. Progress goes to stderr, the report to stdout (or a file), so
`--format json > report.json` stays clean.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, cast

import yaml

from agentops import API_VERSION
from agentops.api_types import RUN_REQUESTED_ANNOTATION, CheckRun, CheckStatus
from agentops.backoff import Backoff
from agentops.check_gate import (EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_NOT_COMPLETED, EXIT_PASSED,
                                 GateResult, Thresholds, gate)
from agentops.check_progress import finished, new_run_request, progress_key, progress_line, requested_run
from agentops.check_report import FORMATS, NoRun, render
from agentops.durations import parse_duration
from agentops.errors import AgentOpsError, ConfigError

PLURAL = "resiliencechecks"
FIELD_MANAGER = "agentops-cli"
# A run's experiments take tens of seconds to minutes each; one read a second shows
# every state change a person could notice without loading the API server.
POLL_S = 1.0
# Reads that fail (API server restarting, a network blip) are retried this way until --timeout.
READ_BACKOFF = Backoff(first_s=1.0, cap_s=10.0, jitter=(0.8, 1.2))
DEFAULT_TIMEOUT = "30m"


class BadInput(AgentOpsError):
    """The check file or the API server's answer to it: exit 2."""


class NotCompleted(AgentOpsError):
    """The run did not complete, or never started: exit 3."""


# ------------------------------------------------------------------ the API


class CheckApi:
    """ResilienceChecks through the Kubernetes API (blocking)."""

    def __init__(self, kubeconfig: str | None) -> None:
        from agentops_operator.kube_client import KubeClient

        self._client = KubeClient(kubeconfig, max_in_flight=1)
        self.default_namespace: str = self._client.api.config.namespace or "default"

    def close(self) -> None:
        self._client.close()

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        from agentops_operator.kube_client import KubeError

        try:
            return cast(dict[str, Any], self._client.call("GET", version=API_VERSION, namespace=namespace,
                                                          url=f"{PLURAL}/{name}"))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as `agentops-cli`, taking over fields another manager set (force)."""
        return cast(dict[str, Any], self._client.call(
            "PATCH", version=API_VERSION, namespace=namespace, url=f"{PLURAL}/{manifest['metadata']['name']}",
            params={"fieldManager": FIELD_MANAGER, "force": "true"}, data=json.dumps(manifest),
            headers={"Content-Type": "application/apply-patch+yaml"}))


# ------------------------------------------------------------------ the check file


def load_manifest(path: str, stdin: IO[str] | None = None) -> dict[str, Any]:
    """The one ResilienceCheck in `path` ("-": standard input); BadInput naming what is wrong."""
    try:
        text = (stdin or sys.stdin).read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not YAML: {exc}") from exc
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise BadInput(f"{path} must hold exactly one ResilienceCheck, found {len(documents)} documents")
    manifest: dict[str, Any] = documents[0]
    if manifest.get("kind") != "ResilienceCheck" or manifest.get("apiVersion") != API_VERSION:
        raise BadInput(f"{path}: kind must be ResilienceCheck and apiVersion {API_VERSION}, "
                       f"got kind {manifest.get('kind')!r} apiVersion {manifest.get('apiVersion')!r}")
    if not isinstance(manifest.get("metadata"), dict) or not manifest["metadata"].get("name"):
        raise BadInput(f"{path}: metadata.name is required")
    return manifest


def with_run_request(manifest: dict[str, Any], namespace: str, request: str) -> dict[str, Any]:
    """The manifest to apply: in `namespace`, asking for a run with `request`; status dropped (not ours)."""
    metadata = {k: v for k, v in manifest["metadata"].items()
                if k in ("name", "labels", "annotations")}
    metadata["namespace"] = namespace
    metadata["annotations"] = {**(metadata.get("annotations") or {}), RUN_REQUESTED_ANNOTATION: request}
    return {"apiVersion": API_VERSION, "kind": "ResilienceCheck", "metadata": metadata, "spec": manifest.get("spec")}


# ------------------------------------------------------------------ following a run


class Progress:
    """The progress display on stderr: one line rewritten on a terminal, a line per change otherwise."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last_key: tuple[object, ...] | None = None
        self._width = 0

    def show(self, run: CheckRun, now: datetime) -> None:
        line = progress_line(run, now)
        if self._tty:
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        elif progress_key(run) != self._last_key:
            self._stream.write(line + "\n")
        self._last_key = progress_key(run)
        self._stream.flush()

    def note(self, text: str) -> None:
        self.end()
        self._stream.write(text + "\n")
        self._stream.flush()

    def end(self) -> None:
        if self._tty and self._width:
            self._stream.write("\n")
            self._width = 0


def follow(api: CheckApi, namespace: str, name: str, request: str, *, timeout_s: float, progress: Progress,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
           now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> tuple[dict[str, Any], CheckRun]:
    """Poll until the run answering `request` has finished; NotCompleted at the deadline or if the check goes."""
    deadline = clock() + timeout_s
    run_id: int | None = None
    failures = 0
    waiting: str | None = None
    from agentops_operator.kube_client import KubeError

    while True:
        try:
            check = api.get(namespace, name)
            failures = 0
        except KubeError as exc:
            if not exc.retryable:
                raise NotCompleted(f"cannot read ResilienceCheck {namespace}/{name}: {exc}") from exc
            failures += 1
            progress.note(f"reading ResilienceCheck {namespace}/{name} failed ({exc}); retrying")
            check = None
        else:
            if check is None:
                raise NotCompleted(f"ResilienceCheck {namespace}/{name} was deleted while it was followed")
            status = cast(CheckStatus, check.get("status") or {})
            run = requested_run(status, request, run_id)
            if run is not None:
                run_id = run["id"]
                progress.show(run, now())
                if finished(run):
                    progress.end()
                    return check, run
            elif run_id is not None:
                raise NotCompleted(f"run {run_id} is no longer in status.runs (spec.historyLimit)")
            elif (check.get("spec") or {}).get("suspend"):
                raise NotCompleted(f"ResilienceCheck {namespace}/{name} is suspended (spec.suspend): no run will start")
            elif status.get("phase") in ("Pending", "Running") and status.get("message") not in (None, waiting):
                # Not started yet: say why in the operator's words (another check on the same
                # Agent, an earlier run still going).
                waiting = status.get("message")
                progress.note(f"waiting for the run to start: {status.get('phase', 'Pending')}: {waiting}")
        if clock() >= deadline:
            progress.end()
            which = f"run {run_id}" if run_id is not None else "the requested run (not started yet)"
            raise NotCompleted(f"timed out waiting for {which} of ResilienceCheck {namespace}/{name}; "
                               f"it goes on in the cluster")
        sleep(READ_BACKOFF.delay(failures) if failures else POLL_S)


# ------------------------------------------------------------------ the commands


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def report_command(args: argparse.Namespace) -> int:
    api = CheckApi(args.kubeconfig)
    try:
        namespace = args.namespace or api.default_namespace
        check = api.get(namespace, args.check)
        if check is None:
            raise BadInput(f"no ResilienceCheck {args.check} in namespace {namespace}")
        try:
            text = render(check, args.format, args.run, degraded_as_failure=args.degraded_as_failure)
        except NoRun as exc:
            if args.run is None:
                raise NotCompleted(str(exc)) from exc
            raise BadInput(str(exc)) from exc
        _write(text, args.output)
        return EXIT_PASSED
    finally:
        api.close()


def check_run_command(args: argparse.Namespace) -> int:
    timeout_s = parse_duration(args.timeout, "--timeout")
    manifest = load_manifest(args.file)
    api = CheckApi(args.kubeconfig)
    try:
        namespace = args.namespace or manifest["metadata"].get("namespace") or api.default_namespace
        name = manifest["metadata"]["name"]
        request = new_run_request(datetime.now(timezone.utc))
        from agentops_operator.kube_client import KubeError

        try:
            api.apply(namespace, with_run_request(manifest, namespace, request))
        except KubeError as exc:
            if exc.status is None:
                raise BadInput(f"cannot reach the API server to apply ResilienceCheck {namespace}/{name}: {exc}") from exc
            raise BadInput(f"the API server rejected ResilienceCheck {namespace}/{name}: {exc}") from exc
        progress = Progress(sys.stderr)
        try:
            progress.note(f"ResilienceCheck {namespace}/{name} applied; run requested "
                          f"({RUN_REQUESTED_ANNOTATION}={request})")
            if not args.wait:
                print(request)
                return EXIT_PASSED
            check, run = follow(api, namespace, name, request, timeout_s=timeout_s, progress=progress)
        except KeyboardInterrupt:
            progress.note(f"stopped following; the run goes on in the cluster "
                          f"(agentops report {name} -n {namespace} shows it)")
            return EXIT_INTERRUPTED
        _write(render(check, args.format, run["id"], degraded_as_failure=args.degraded_as_failure), args.output)
        if args.junit:
            junit = render(check, "junit", run["id"], degraded_as_failure=args.degraded_as_failure)
            Path(args.junit).write_text(junit, encoding="utf-8")
        result: GateResult = gate(run, Thresholds.of(check.get("spec") or {}, args.min_score,
                                                    args.fail_on_vulnerable_weight))
        print(result.summary(), file=sys.stderr)
        return result.exit_code
    finally:
        api.close()


def run_guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace, prog: str) -> int:
    """A command's errors as one line on stderr and the documented exit code."""
    try:
        return command(args)
    except (BadInput, ConfigError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NotCompleted as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_NOT_COMPLETED
    except AgentOpsError as exc:  # the API server unreachable or refusing (KubeError, InvalidField)
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


# ------------------------------------------------------------------ the arguments


def _common(parser: argparse.ArgumentParser, namespace_help: str) -> None:
    parser.add_argument("-n", "--namespace", help=f"the check's namespace (default: {namespace_help})")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="report format (default: markdown)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of standard output")
    parser.add_argument("--degraded-as-failure", action="store_true",
                        help="in JUnit, a Degraded experiment is a <failure> (default: it passes with a note)")


def _score(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 0..100, got {value}")
    return value


def _weight(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 1..100, got {value}")
    return value


def add_report_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "report", help="render a ResilienceCheck run as Markdown, JSON or JUnit XML",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"exit codes:\n  {EXIT_PASSED}  the report was written\n  {EXIT_BAD_INPUT}  no such check or run id, or the "
               f"API server could not be read\n  {EXIT_NOT_COMPLETED}  the check has no run yet")
    parser.add_argument("check", metavar="CHECK", help="name of the ResilienceCheck")
    parser.add_argument("--run", type=int, metavar="ID", help="the run's id (default: the newest run)")
    _common(parser, "the kubeconfig context's")
    parser.set_defaults(func=lambda args: run_guarded(report_command, args, "agentops report"))


def add_check_parser(sub: Any) -> None:
    check = sub.add_parser("check", help="ResilienceChecks: 'agentops check run -f check.yaml --wait' gates CI")
    verbs = check.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = verbs.add_parser(
        "run", help="apply a ResilienceCheck, ask for a new run, optionally wait for it and gate on its score",
        description="Apply the ResilienceCheck in FILE (server-side apply, field manager agentops-cli), ask the "
                    f"operator for a new run ({RUN_REQUESTED_ANNOTATION}), and with --wait follow it to its end, "
                    "print its report and exit by the gate.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES_HELP)
    run.add_argument("-f", "--file", required=True, metavar="FILE", help="the ResilienceCheck manifest ('-': standard input)")
    run.add_argument("--wait", action="store_true", help="follow the run to its end and gate on it (else print the run request and exit 0)")
    run.add_argument("--timeout", default=DEFAULT_TIMEOUT, metavar="DURATION",
                     help=f"give up waiting after this long, e.g. 45m (default {DEFAULT_TIMEOUT}); exit 3, the check stays")
    run.add_argument("--min-score", type=_score, metavar="N", help="lowest passing score 0..100 (default: the check's spec.passingScore)")
    run.add_argument("--fail-on-vulnerable-weight", type=_weight, metavar="W",
                     help="fail when a Vulnerable experiment weighs W or more (default: spec.failOnVulnerableWeight)")
    run.add_argument("--junit", metavar="FILE", help="also write the run as JUnit XML to FILE")
    _common(run, "the file's metadata.namespace, else the kubeconfig context's")
    run.set_defaults(func=lambda args: run_guarded(check_run_command, args, "agentops check run"))
