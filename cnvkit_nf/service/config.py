"""What the job service allows: who may call it (tokens), which local folders requests may name
(data roots) and how big a request may be (limits); and what it keeps of ended jobs (retention).

The settings are a JSON file (`cnvkit-nf serve --config`, or env CNVKIT_NF_SERVICE_CONFIG):

    {"tokens": [{"token_sha256": "<hex>", "owner": "alice", "projects": ["lab-a"]}],
     "data_roots": ["/data/{project}", "/data/shared",
                    {"path": "/scratch/results", "writable": true}],
     "object_roots": ["s3a://genes/{project}/", "s3a://references/"],
     "limits": {"max_body_bytes": 1048576, "max_inputs": 200, "max_option_length": 1000,
                "max_queued": 1000, "head_seconds": 5, "request_seconds": 10,
                "keep_alive_seconds": 15, "max_connections": 1000, "max_header_bytes": 16384,
                "api_threads": 16, "submission_threads": 4, "max_uploads_per_token": 4,
                "check_memory_bytes": 200000000, "check_cpu_seconds": 120,
                "check_seconds": 600},
     "retention": {"max_age": "30d", "max_disk": "200G", "every": "1h"}}

A token may be given in clear (`"token"`) or, better, by its SHA-256 (`"token_sha256"`); env
CNVKIT_NF_TOKENS may hold the same list as "tokens". `{project}` in a data root stands for the
project of the request, so that projects can be kept apart on disk; such a root is writable
(output_dir may lie in it). A root shared by every project is read-only unless it says
`"writable": true`; then it is shared only by folder: each project reads and writes in its own
`<root>/<project>` (made at start, `prepare`), and nothing else of it. `object_roots` does the
same for object-storage URIs, `{"path": "s3a://...", "writable": true}` included: output_dir
must lie in a writable one (without `object_roots`, any object the service's credentials
reach).
`retention` cleans the state dir every `every` (default 1h) by the policy of `cnvkit-nf clean`
(`retention`): max_age, max_disk or both.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cnvkit_nf.contract.confs import SUBSTEP_OF_FIELD
from cnvkit_nf.contract.model import INPUT_FIELDS, Request
from cnvkit_nf.contract.paths import Location, parse_location
from cnvkit_nf.contract.problems import Problem
from cnvkit_nf.launch.local_files import CheckLimits
from cnvkit_nf.reference.cache import parse_size
from cnvkit_nf.service.retention import Policy, Schedule, parse_duration
from cnvkit_nf.storage.confined import Roots

PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
DEFAULT_LIMITS = {"max_body_bytes": 1 << 20, "max_inputs": 200, "max_option_length": 1000,
                  "max_queued": 1000,
                  # the HTTP transport (service/http_server.py): seconds to send a request's
                  # head and all of it, idle keep-alive seconds, open connections, request
                  # line and headers, queries answered at once, submissions checked at once,
                  # submissions under way per token
                  "head_seconds": 5, "request_seconds": 10, "keep_alive_seconds": 15,
                  "max_connections": 1000, "max_header_bytes": 16 << 10, "api_threads": 16,
                  "submission_threads": 4, "max_uploads_per_token": 4,
                  # what one run of the input check may cost (local_files.CheckLimits)
                  "check_memory_bytes": CheckLimits.memory_bytes,
                  "check_cpu_seconds": CheckLimits.cpu_seconds,
                  "check_seconds": int(CheckLimits.wall_seconds)}


class ConfigError(Exception):
    """The service settings are unusable; the message says where and why."""


@dataclass(frozen=True)
class Caller:
    """Who a token belongs to and which projects it may use."""

    owner: str
    projects: frozenset[str]


@dataclass(frozen=True)
class DataRoot:
    """A local folder requests may name files in; `{project}` in it stands for the project.
    A shared root (without `{project}`) that is writable is shared only by folder: a project
    reaches nothing of it but its own `<path>/<project>`, to read and write (`pattern`)."""

    path: str
    writable: bool

    @property
    def split_by_project(self) -> bool:
        """Whether this is a writable shared root, split into a folder per project."""
        return self.writable and "{project}" not in self.path

    @property
    def pattern(self) -> str:
        """The folder a project reaches, `{project}` standing for the project."""
        return os.path.join(self.path, "{project}") if self.split_by_project else self.path

    def of(self, project: str) -> Path:
        """The folder `project` reaches."""
        return Path(os.path.normpath(self.pattern.replace("{project}", project)))


@dataclass(frozen=True)
class ObjectRoot(DataRoot):
    """An object-storage folder requests may name objects in, by the rules of `DataRoot`."""

    def of(self, project: str) -> Location:  # type: ignore[override]
        """The folder `project` reaches."""
        return parse_location(self.pattern.replace("{project}", project)).as_folder()


@dataclass(frozen=True)
class ServiceConfig:
    """Tokens (by SHA-256), data roots, limits and retention of a job service."""

    callers: dict[str, Caller] = field(default_factory=dict)
    data_roots: tuple[DataRoot, ...] = ()
    object_roots: tuple[ObjectRoot, ...] | None = None  # None: any URI the credentials reach
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    retention: Schedule | None = None  # None: nothing is cleaned but by `cnvkit-nf clean`

    def check_limits(self) -> CheckLimits:
        """What each run of the input check may cost, by the limits."""
        return CheckLimits(self.limits["check_memory_bytes"], self.limits["check_cpu_seconds"],
                           self.limits["check_seconds"])

    def caller(self, token: str | None) -> Caller | None:
        """The caller a token identifies, or None."""
        if not token:
            return None
        return self.callers.get(hashlib.sha256(token.encode()).hexdigest())

    def roots(self, project: str) -> Roots:
        """The folders a project's jobs may read from and write into."""
        return Roots(tuple(root.of(project) for root in self.data_roots),
                     tuple(root.of(project) for root in self.data_roots if root.writable),
                     f"project {project}")

    def could_hold(self, path: Path) -> bool:
        """Whether some project's data root holds `path`, or lies in it (as written or
        resolved): a root in a state dir lets a project named `runs` reach its runs/."""
        forms = {os.path.normpath(path), os.path.realpath(path)}
        for root in self.data_roots:
            pattern = re.escape(os.path.normpath(root.pattern)).replace(
                re.escape("{project}"), PROJECT_ID.pattern)
            fixed = os.path.normpath(root.pattern.split("{project}")[0] or "/")
            if any(re.match(f"{pattern}(?:/|$)", form) or fixed == form
                   or fixed.startswith(form.rstrip("/") + "/") for form in forms):
                return True
        return False

    def prepare(self) -> None:
        """Make the folder of every project the tokens name in each writable shared root (the
        walk enters only roots that exist), and refuse data roots that let one project write
        where another does: jobs are kept apart only within a project (`jobs.Occupied`).
        ConfigError says which folder and why. Done once at start, not at each walk: the
        projects are known then and do not change, `roots` stays without side effects, and
        the operator learns at once of a folder that cannot be made."""
        projects = sorted(set().union(*(caller.projects for caller in self.callers.values())))
        for root in (root for root in self.data_roots if root.split_by_project):
            for project in projects:
                folder = root.of(project)
                try:
                    folder.mkdir(exist_ok=True)
                except OSError as err:
                    raise ConfigError(f"data_roots: cannot make {folder}, the folder of project "
                                      f"{project} in {root.path}: {err.strerror}") from None
                if folder.is_symlink():
                    raise ConfigError(f"data_roots: {folder}, the folder of project {project} "
                                      f"in {root.path}, is a symbolic link; the service keeps "
                                      "each project's folder there a plain folder")
        writable = [(project, os.path.realpath(root.of(project)) + "/") for project in projects
                    for root in self.data_roots if root.writable]
        writable += [(project, root.of(project).raw.replace("s3a://", "s3://"))
                     for project in projects for root in self.object_roots or ()
                     if root.writable]
        for (one, first), (other, second) in itertools.combinations(writable, 2):
            if one != other and (first.startswith(second) or second.startswith(first)):
                setting = "data_roots" if first.startswith("/") else "object_roots"
                raise ConfigError(f"{setting}: project {one} writes in {first.rstrip('/')} and "
                                  f"project {other} in {second.rstrip('/')}, the same folder or "
                                  "one inside the "
                                  "other: give each project folders of its own")

    def request_problems(self, request: Request, project: str) -> list[Problem]:
        """Limits and object-root rules a (schema-valid or not) request breaks; its local
        paths are checked where they are opened, inside `roots(project)` (`local_files`)."""
        return self.limit_problems(request) + self._object_problems(request, project)

    def limit_problems(self, request: Request) -> list[Problem]:
        """How a request exceeds the service's limits (inputs, option lengths): the sizes of
        what was sent, whatever its items are."""
        problems, raw = [], request.raw
        inputs = sum(len(raw[name]) for name in (*INPUT_FIELDS, "samples")
                     if isinstance(raw.get(name), list)) or len(request.samples)
        if inputs > self.limits["max_inputs"]:
            where = "experimental_inputs" if request.way == "lists" else request.way
            problems.append(Problem(where, f"{inputs} BAM files in all; this "
                                    f"service takes at most {self.limits['max_inputs']}"))
        for name in SUBSTEP_OF_FIELD:
            value = raw.get(name)
            if isinstance(value, str) and len(value) > self.limits["max_option_length"]:
                problems.append(Problem(name, f"{len(value)} characters; at most "
                                        f"{self.limits['max_option_length']} are accepted"))
        return problems

    def _object_problems(self, request: Request, project: str) -> list[Problem]:
        problems = []
        for where, location in request.paths():  # those that do not parse: the validation's
            reason = self._object_problem(location, project, where == "output_dir") \
                if location.is_remote else None
            if reason:
                problems.append(Problem(where, reason))
        return problems

    def _object_problem(self, location: Location, project: str, writing: bool) -> str | None:
        """Why an object-storage URI is not under the project's (writable, for `writing`)
        object roots, or None."""
        if self.object_roots is None:
            return None  # the service's credentials alone decide
        if any(part in ("", ".", "..") for part in location.key.rstrip("/").split("/")):
            return "empty, '.' and '..' parts are not allowed in object keys"
        allowed = [root.of(project) for root in self.object_roots
                   if root.writable or not writing]
        if any(root.family == location.family and root.bucket == location.bucket
               and location.as_folder().key.startswith(root.key) for root in allowed):
            return None
        places = ", ".join(root.raw for root in allowed) or "none"
        kind = "writable object-storage folders" if writing else "object-storage folders"
        return f"outside the {kind} of project {project}: {places}"


def load(path: str | Path | None, extra_roots: tuple[str, ...] = ()) -> ServiceConfig:
    """Read the settings file (if any) and CNVKIT_NF_TOKENS; raise ConfigError when unusable."""
    settings: dict = {}
    if path:
        try:
            settings = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: {err}") from err
        if not isinstance(settings, dict):
            raise ConfigError(f"{path}: must hold a JSON object")
    unknown = set(settings) - {"tokens", "data_roots", "object_roots", "limits", "retention"}
    if unknown:
        raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
    tokens = list(settings.get("tokens") or [])
    if os.environ.get("CNVKIT_NF_TOKENS"):
        try:
            tokens += json.loads(os.environ["CNVKIT_NF_TOKENS"])
        except json.JSONDecodeError as err:
            raise ConfigError(f"CNVKIT_NF_TOKENS: {err}") from err
    limits = {**DEFAULT_LIMITS, **(settings.get("limits") or {})}
    bad = [k for k, v in limits.items()
           if k not in DEFAULT_LIMITS or not isinstance(v, int) or v < 1]
    if bad:
        raise ConfigError(f"limits: unknown or not a positive integer: {sorted(bad)}")
    roots = tuple(_root(entry, "data_roots") for entry in settings.get("data_roots") or ())
    roots += tuple(DataRoot(path, writable=False) for path in extra_roots)
    objects = settings.get("object_roots")
    if objects is not None:
        if not isinstance(objects, list):
            raise ConfigError("object_roots must be a list of s3a://, s3:// or obs:// folders")
        objects = tuple(_root(entry, "object_roots") for entry in objects)
    return ServiceConfig(_callers(tokens), roots, objects, limits,
                         _retention(settings["retention"]) if "retention" in settings else None)


def _retention(entry: object) -> Schedule:
    """The retention setting: {"max_age": "30d", "max_disk": "200G", "every": "1h"}, with
    max_age, max_disk or both."""
    if not isinstance(entry, dict) or set(entry) - {"max_age", "max_disk", "every"} or not (
            {"max_age", "max_disk"} & set(entry)):
        raise ConfigError(f"retention: {entry!r} is not an object with max_age (e.g. \"30d\"), "
                          'max_disk (e.g. "200G") or both, and optionally every (e.g. "1h")')

    def read(name: str, parse, what: str):
        if name not in entry:
            return None
        try:
            if isinstance(entry[name], str):
                return parse(entry[name])
        except ValueError:
            pass
        raise ConfigError(f"retention.{name}: {entry[name]!r} is not a {what}")

    every = read("every", parse_duration, 'duration such as "1h", "30m" or "1d"')
    if every == 0:
        raise ConfigError("retention.every: must be more than 0")
    policy = Policy(read("max_age", parse_duration, 'duration such as "30d" or "12h"'),
                    read("max_disk", parse_size, 'size such as "200G" or "500M"'))
    return Schedule(policy, every or 3600.0)


def _root(entry: object, setting: str) -> DataRoot:
    """A data_roots entry (an absolute path) or an object_roots entry (an object-storage
    folder), or {"path": ..., "writable": true|false}. A root of each project's own (with
    `{project}`) is writable by default, a shared one read-only."""
    path, writable = entry, None
    if isinstance(entry, dict) and not set(entry) - {"path", "writable"}:
        path, writable = entry.get("path"), entry.get("writable")
    objects = setting == "object_roots"
    try:
        usable = isinstance(path, str) and isinstance(writable, bool | None) and (
            parse_location(path.replace("{project}", "p")).is_remote if objects
            else Path(path).is_absolute())
    except ValueError:
        usable = False
    if not usable:
        what = "an s3a://, s3:// or obs:// folder" if objects else "an absolute path"
        raise ConfigError(f"{setting}: {entry!r} is not {what} or "
                          '{"path": ..., "writable": true|false}')
    return (ObjectRoot if objects else DataRoot)(
        path, "{project}" in path if writable is None else writable)


def _callers(tokens: list) -> dict[str, Caller]:
    callers = {}
    for i, entry in enumerate(tokens):
        where = f"tokens[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("owner"), str):
            raise ConfigError(f"{where}: needs an owner, projects and a token or token_sha256")
        projects = entry.get("projects")
        if not isinstance(projects, list) or not all(
                isinstance(p, str) and PROJECT_ID.fullmatch(p) for p in projects):
            raise ConfigError(f"{where}: projects must be a list of project ids "
                              f"({PROJECT_ID.pattern})")
        if isinstance(entry.get("token"), str) and len(entry["token"]) >= 16:
            digest = hashlib.sha256(entry["token"].encode()).hexdigest()
        elif isinstance(entry.get("token_sha256"), str) and re.fullmatch(
                r"[0-9a-f]{64}", entry["token_sha256"]):
            digest = entry["token_sha256"]
        else:
            raise ConfigError(f"{where}: give a token of 16 characters or more, or its "
                              "token_sha256 (64 hex digits)")
        callers[digest] = Caller(entry["owner"], frozenset(projects))
    return callers
