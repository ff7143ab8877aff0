"""The audit log: one entry per event, chained per environment with SHA-256 (SECURITY.md 19).

Each entry stores ``hash = sha256(previous hash || canonical JSON of the
entry)``, the previous hash being that of the environment's entry before it
(32 zero bytes for the first). Changing, inserting or deleting a stored entry
breaks the chain at that entry or the next one, and ``verify_chain`` names it.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    Notification,
    Transcoding,
)
from eventsourcing.utils import resolve_topic

from domain.credential import UnknownUserLogin, UserCredential
from domain.environment import Environment
from domain.identity import FederatedLogin, IdentityLink, RejectedCallback
from domain.instants import rfc3339
from projections.api import AuditEntry, AuditQuery, ChainReport
from projections.store import ViewStore, Writer

SUCCESS = "success"
FAILURE = "failure"
GENESIS = "0" * 64


class UnknownTopicError(LookupError):
    """An event this version of the view does not know: never skipped silently."""


@dataclass(frozen=True)
class Rule:
    """How one kind of event reads in the audit log. ``details`` never copies a secret.

    A ``type`` of None writes no entry: the event is an index kept beside another
    event that is saved with it and makes the entry (an identity link).
    """

    type: str | None
    outcome: str
    details: Callable[[Any], dict[str, Any]]


def _nothing(event: Any) -> dict[str, Any]:
    return {}


def _locked_until(event: Any) -> dict[str, Any]:
    return {"locked_until": rfc3339(event.locked_until)}


def _provider_details(event: Any) -> dict[str, Any]:
    # Never the client secret, not even encrypted.
    return {
        "issuer": event.issuer,
        "client_id": event.client_id,
        "display_name": event.display_name,
        "redirect_uris": sorted(event.redirect_uris),
        "password_login": event.password_login,
        "provisioning": event.provisioning,
        "username_claim": event.username_claim,
        "groups_claim": event.groups_claim,
        "two_factor": event.two_factor,
    }


C = UserCredential
E = Environment

# Every event topic the domain records. A topic missing here stops the view.
RULES: dict[str, Rule] = {
    E.Created.TOPIC: Rule(
        "environment_created",
        SUCCESS,
        lambda e: {"display_name": e.display_name, "issuer": e.issuer},
    ),
    E.TwoFactorRequirementChanged.TOPIC: Rule(
        "two_factor_requirement_changed", SUCCESS, lambda e: {"require_2fa": e.require_2fa}
    ),
    E.GroupsSelected.TOPIC: Rule(
        "groups_selected", SUCCESS, lambda e: {"groups": sorted(e.groups)}
    ),
    C.Created.TOPIC: Rule(
        "user_created",
        SUCCESS,
        lambda e: {"groups": sorted(e.groups), "roles": sorted(e.roles)},
    ),
    C.PasswordChanged.TOPIC: Rule("password_changed", SUCCESS, _nothing),
    C.PasswordRehashed.TOPIC: Rule("password_rehashed", SUCCESS, _nothing),
    C.GroupsChanged.TOPIC: Rule("groups_changed", SUCCESS, lambda e: {"groups": sorted(e.groups)}),
    C.RolesChanged.TOPIC: Rule("roles_changed", SUCCESS, lambda e: {"roles": sorted(e.roles)}),
    C.PasswordStepSucceeded.TOPIC: Rule(
        "login_password_succeeded", SUCCESS, lambda e: {"next_step": e.next_step}
    ),
    C.PasswordStepFailed.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": e.reason}
    ),
    C.PasswordStepThrottled.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": "throttled", **_locked_until(e)}
    ),
    C.PasswordStepLocked.TOPIC: Rule("password_step_locked", FAILURE, _locked_until),
    C.RegistrationStarted.TOPIC: Rule("two_factor_registration_started", SUCCESS, _nothing),
    C.AuthenticatorRegistered.TOPIC: Rule("two_factor_registered", SUCCESS, _nothing),
    C.CodeAccepted.TOPIC: Rule("two_factor_succeeded", SUCCESS, lambda e: {"kind": "totp"}),
    C.CodeRejected.TOPIC: Rule(
        "two_factor_failed", FAILURE, lambda e: {"kind": e.kind, "reason": e.reason}
    ),
    C.CodeReplayed.TOPIC: Rule("two_factor_code_replayed", FAILURE, _nothing),
    C.CodeStepLocked.TOPIC: Rule("two_factor_locked", FAILURE, _locked_until),
    C.CodeStepThrottled.TOPIC: Rule(
        "two_factor_throttled", FAILURE, lambda e: {"reason": e.reason}
    ),
    C.AuthenticatorDisabled.TOPIC: Rule(
        "two_factor_disabled", FAILURE, lambda e: {"total_failures": e.total_failures}
    ),
    C.TwoFactorReset.TOPIC: Rule("two_factor_reset", SUCCESS, lambda e: {"reason": e.reason}),
    C.RecoveryCodesIssued.TOPIC: Rule(
        "recovery_codes_issued", SUCCESS, lambda e: {"count": len(e.code_hashes)}
    ),
    C.RecoveryCodeUsed.TOPIC: Rule(
        "recovery_code_used", SUCCESS, lambda e: {"remaining": e.remaining}
    ),
    C.LoginSucceeded.TOPIC: Rule("login_succeeded", SUCCESS, lambda e: {"method": e.method}),
    UnknownUserLogin.Created.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": "unknown_user"}
    ),
    # ----- the identity provider -----
    C.PasswordLoginRefused.TOPIC: Rule(
        "login_password_failed", FAILURE, lambda e: {"reason": e.reason}
    ),
    E.IdentityProviderConnected.TOPIC: Rule(
        "identity_provider_connected", SUCCESS, lambda e: _provider_details(e)
    ),
    E.IdentityProviderChanged.TOPIC: Rule(
        "identity_provider_changed", SUCCESS, lambda e: _provider_details(e)
    ),
    E.IdentityProviderDisconnected.TOPIC: Rule(
        "identity_provider_disconnected", SUCCESS, lambda e: {"issuer": e.issuer}
    ),
    C.IdentityLinked.TOPIC: Rule(
        "identity_linked", SUCCESS, lambda e: {"issuer": e.issuer, "subject": e.subject}
    ),
    C.IdentityUnlinked.TOPIC: Rule(
        "identity_unlinked", SUCCESS, lambda e: {"issuer": e.issuer, "subject": e.subject}
    ),
    C.FederatedStepSucceeded.TOPIC: Rule(
        "login_federated_succeeded",
        SUCCESS,
        lambda e: {
            "issuer": e.issuer,
            "subject": e.subject,
            "two_factor": e.two_factor,
            "mfa": e.mfa,
            "next_step": e.next_step,
        },
    ),
    FederatedLogin.Created.TOPIC: Rule(
        "login_federated_started", SUCCESS, lambda e: {"redirect_uri": e.redirect_uri}
    ),
    FederatedLogin.Completed.TOPIC: Rule(None, SUCCESS, _nothing),
    FederatedLogin.Failed.TOPIC: Rule(
        "login_federated_failed",
        FAILURE,
        lambda e: {"reason": e.reason, "subject": e.subject},
    ),
    RejectedCallback.Created.TOPIC: Rule(
        "login_federated_failed", FAILURE, lambda e: {"reason": e.reason, "subject": None}
    ),
    IdentityLink.Created.TOPIC: Rule(None, SUCCESS, _nothing),
    IdentityLink.Relinked.TOPIC: Rule(None, SUCCESS, _nothing),
    IdentityLink.Released.TOPIC: Rule(None, SUCCESS, _nothing),
}

AUDIT_TYPES = tuple(sorted({rule.type for rule in RULES.values() if rule.type is not None}))


# ----- the hash chain -----


def canonical(entry: AuditEntry) -> bytes:
    """The entry's content as bytes that both databases and every rebuild reproduce exactly.

    The JSON of ``{"position", "environment", "occurred_at", "type", "username",
    "actor", "outcome", "ip", "user_agent", "details"}`` as ``canonical_json``
    writes it, ``occurred_at`` in UTC with six fractional digits.
    """
    return chain_content(entry, canonical_json(entry.details))


def canonical_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

    orjson writes strings, ints, booleans, null, lists and string-keyed objects
    byte for byte as that call does (tests/projections/test_audit.py compares
    every code point), several times faster. It writes floats differently
    (0.00001 for 1e-05) and writes types that json.dumps refuses, so any other
    value, and an int beyond 64 bits, goes through json.dumps itself.
    """
    if _json_native(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:
            pass
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_native(value: Any) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is list:
        return all(type(item) in _SCALARS or _json_native(item) for item in value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _SCALARS and not _json_native(item)):
                return False
        return True
    return False


_SCALARS = frozenset({str, int, bool, type(None)})


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is str:
        return encode_basestring(value)
    return canonical_json(value)


def chain_content(entry: AuditEntry | ChainedEntry, details: str) -> bytes:
    """``canonical(entry)`` for an entry whose details are canonical JSON already.

    What ``canonical_json`` makes of the entry's content, written out: keys in
    sorted order, each value as json.dumps writes it (``encode_basestring`` is
    the function json.dumps itself uses for strings). The projection encodes
    the details once, for the stored column and for the hash.
    """
    position = entry.position
    number = int.__repr__(position) if type(position) is int else canonical_json(position)
    return (
        f'{{"actor":{_json_value(entry.actor)},"details":{details},'
        f'"environment":{_json_value(entry.environment)},"ip":{_json_value(entry.ip)},'
        f'"occurred_at":{_json_value(utc_text(entry.occurred_at))},'
        f'"outcome":{_json_value(entry.outcome)},"position":{number},'
        f'"type":{_json_value(entry.type)},"user_agent":{_json_value(entry.user_agent)},'
        f'"username":{_json_value(entry.username)}}}'
    ).encode()


def utc_text(at: datetime) -> str:
    """``at`` in UTC as the chain hashes it, six fractional digits and a Z.

    Equal to ``at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")``, at a third of the cost.
    """
    at = at.astimezone(UTC)
    if at.year < 1000:  # strftime writes such years unpadded
        return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 (faster than f"{:02d}")
        at.year,
        at.month,
        at.day,
        at.hour,
        at.minute,
        at.second,
        at.microsecond,
    )


def link(previous: str, content: bytes) -> str:
    """The hash of an entry whose canonical bytes are ``content``, after ``previous``."""
    return hashlib.sha256(bytes.fromhex(previous) + content).hexdigest()


def chain_hash(previous: str, entry: AuditEntry) -> str:
    return link(previous, canonical(entry))


# ----- the view's interface -----


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose aggregate an event belongs to: later events carry only the aggregate's id.

    Fixed by the aggregate's first event and never changed, so a writer may
    keep owners it has seen for as long as it likes.
    """

    environment: str
    username: str | None


class ChainedEntry(NamedTuple):
    """An entry as the view stores it: details as canonical JSON, and its chain hash."""

    position: int
    environment: str
    occurred_at: datetime
    type: str
    username: str | None
    actor: str | None
    outcome: str
    ip: str | None
    user_agent: str | None
    details: str
    hash: str


class AuditWriter(Writer):
    @abstractmethod
    def owner(self, originator_id: UUID) -> Owner | None: ...

    @abstractmethod
    def add_owner(self, originator_id: UUID, owner: Owner) -> None: ...

    @abstractmethod
    def last_hash(self, environment: str) -> str:
        """The hash of the environment's latest entry, GENESIS before the first."""

    @abstractmethod
    def append(self, entry: ChainedEntry) -> None: ...


class AuditView(ViewStore):
    """The audit log's query and update interface, whatever the database."""

    name = "audit"
    base = "audit_v1"

    @abstractmethod
    def writer(self, tx: Any, slot: str) -> AuditWriter: ...

    @abstractmethod
    def entries(self, query: AuditQuery, after: int, limit: int) -> list[AuditEntry]:
        """Entries matching ``query`` with positions above ``after``, oldest first."""

    @abstractmethod
    def chained(
        self, environment: str, after: int, upto: int, limit: int
    ) -> list[tuple[AuditEntry, str]]:
        """The environment's entries in (after, upto] with their stored hashes."""

    @abstractmethod
    def chain_head(self, environment: str) -> tuple[int, str] | None:
        """Position and hash of the environment's latest entry, as last written."""


# ----- reading events -----


class EventDecoder:
    """Decodes stored events into the objects the mapper would give, in half the time.

    The mapper parses with json's object hook, one Python call for every JSON
    object; a rebuild spent a third of its time there. This parses the same
    bytes with orjson and revives the transcoder's custom types (``{"_type_":
    name, "_data_": data}``, innermost first like the object hook) with the
    transcoder's own transcodings, then builds the event as the mapper does,
    so every attribute is the value the mapper would give. Whatever it cannot
    vouch for goes the mapper's way: a cipher or compressor, another mapper or
    transcoder class, an event class that upcasts, an id that is not a UUID,
    JSON that orjson refuses (NaN) or reads differently (it makes floats of
    ints beyond 64 bits, so any float goes the mapper's way), an unknown custom
    type.
    """

    def __init__(self, mapper: Mapper[UUID]) -> None:
        self.mapper = mapper
        transcoder = mapper.transcoder
        self._names: dict[str, Callable[[Any], Any]] | None = None
        if (
            type(mapper) is Mapper
            and type(transcoder) is JSONTranscoder
            and mapper.cipher is None
            and mapper.compressor is None
        ):
            self._names = {name: _decoding(t) for name, t in transcoder.names.items()}
        self._classes: dict[str, type[Any] | None] = {}

    def decode(self, notification: Notification) -> Any:
        topic = notification.topic
        if topic in self._classes:
            cls = self._classes[topic]
        else:
            cls = self._classes[topic] = self._direct_class(topic)
        names = self._names
        if names is None or cls is None or type(notification.originator_id) is not UUID:
            return self.mapper.to_domain_event(notification)
        state = _parse(notification.state, names)
        if state is None:
            return self.mapper.to_domain_event(notification)
        state["originator_id"] = notification.originator_id
        state["originator_version"] = notification.originator_version
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    @staticmethod
    def _direct_class(topic: str) -> type[Any] | None:
        """The topic's event class, unless the mapper has to upcast its events."""
        try:
            cls = resolve_topic(topic)
        except Exception:
            return None  # the mapper will say why
        return cls if getattr(cls, "class_version", 1) == 1 else None


def _parse(data: bytes, names: dict[str, Callable[[Any], Any]]) -> dict[str, Any] | None:
    """The event state as the object hook would leave it, or None to leave it to the mapper."""
    try:
        state = orjson.loads(data)
        if type(state) is not dict or "class_version" in state or _is_custom(state):
            return None
        for key, value in state.items():
            if type(value) in _REVIVED:
                state[key] = _revive(value, names)
    except Exception:
        return None  # the mapper raises its own error if the state really is broken
    return state


def _decoding(transcoding: Transcoding) -> Callable[[Any], Any]:
    # DatetimeAsISO.decode asserts a string and calls fromisoformat, which fails
    # on anything else too; the method call costs a third of an event's decoding.
    if type(transcoding) is DatetimeAsISO:
        return datetime.fromisoformat
    return transcoding.decode


def _is_custom(value: dict[str, Any]) -> bool:
    return len(value) == 2 and "_type_" in value and "_data_" in value


def _revive(value: Any, names: dict[str, Callable[[Any], Any]]) -> Any:
    """What json's object hook makes of a parsed list or object, innermost first."""
    if type(value) is float:
        raise _NotExact(value)
    if type(value) is list:
        return [_revive(item, names) if type(item) in _REVIVED else item for item in value]
    if _is_custom(value):
        data = value["_data_"]
        if type(data) in _REVIVED:
            data = _revive(data, names)
        # A "_type_" that is not a string fails here as it fails in the hook.
        return names[value["_type_"]](data)
    return {
        key: _revive(item, names) if type(item) in _REVIVED else item
        for key, item in value.items()
    }


class _NotExact(ValueError):
    """A parsed value that may not be what json.loads makes of the same text."""


# The parsed values _revive looks at: containers, and floats that may be ints.
_REVIVED = frozenset({dict, list, float})


# ----- the projection -----


class AuditProjection:
    """Turns each event into one entry of its environment's chain.

    The live runners and a rebuild both come through ``process``, so a rebuilt
    slot holds the very rows and hashes the live one does.
    """

    view = "audit"

    def __init__(self) -> None:
        self._decoder: EventDecoder | None = None

    def process(
        self, writer: AuditWriter, notification: Notification, mapper: Mapper[UUID]
    ) -> None:
        rule = RULES.get(notification.topic)
        if rule is None:
            raise UnknownTopicError(f"no audit rule for topic {notification.topic!r}")
        if rule.type is None:
            return
        decoder = self._decoder
        if decoder is None or decoder.mapper is not mapper:
            decoder = self._decoder = EventDecoder(mapper)
        event = decoder.decode(notification)
        owner = self._owner(writer, notification.topic, event)
        details = canonical_json(rule.details(event))
        entry = ChainedEntry(
            notification.id,
            owner.environment,
            event.timestamp.astimezone(UTC),
            rule.type,
            owner.username,
            event.actor,
            rule.outcome,
            event.ip,
            event.user_agent,
            details,
            hash="",
        )
        previous = writer.last_hash(owner.environment)
        writer.append(entry._replace(hash=link(previous, chain_content(entry, details))))

    @staticmethod
    def _owner(writer: AuditWriter, topic: str, event: Any) -> Owner:
        if topic == E.Created.TOPIC:
            owner = Owner(event.slug, None)
            writer.add_owner(event.originator_id, owner)
            return owner
        if topic == C.Created.TOPIC:
            owner = Owner(event.environment, event.username)
            writer.add_owner(event.originator_id, owner)
            return owner
        if topic == FederatedLogin.Created.TOPIC:
            owner = Owner(event.environment, None)
            writer.add_owner(event.originator_id, owner)
            return owner
        if topic == RejectedCallback.Created.TOPIC:
            return Owner(event.environment, None)
        if topic == UnknownUserLogin.Created.TOPIC:
            # One aggregate per attempt: nothing later refers to it.
            return Owner(event.environment, event.username)
        found = writer.owner(event.originator_id)
        if found is None:
            raise LookupError(f"no environment or user created with id {event.originator_id}")
        return found


def verify_chain(view: AuditView, environment: str, page: int = 1000) -> ChainReport:
    """Recompute the environment's chain; name the first entry whose stored hash differs.

    Rows are read page by page, so the whole log is never in memory. A tail cut
    off the table shows as the chain head's position being absent.
    """
    head = view.chain_head(environment)
    previous, checked, last, after = GENESIS, 0, 0, 0
    beyond_head: int | None = None
    while True:
        # Read past the head too: every write moves the head in the same
        # transaction, so a row beyond it was put there past the service.
        rows = view.chained(environment, after, 2**62, page)
        for entry, stored in rows:
            checked += 1
            if stored != chain_hash(previous, entry):
                return ChainReport(environment, checked, entry.position)
            if head is not None and beyond_head is None and entry.position > head[0]:
                beyond_head = entry.position
            previous, last = stored, entry.position
        if len(rows) < page:
            break
        after = last
    if head is None:
        broken = last if checked else None
    elif beyond_head is not None:
        broken = beyond_head
    else:
        broken = None if (last, previous) == head else head[0]
    return ChainReport(environment, checked, broken)


def export(view: AuditView, query: AuditQuery, page: int = 1000) -> Iterator[AuditEntry]:
    """Every matching entry, fetched by keyset pages of ``page`` rows."""
    after = 0
    while True:
        rows = view.entries(query, after, page)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].position
