"""Trained models in the database: versioned, with their metrics, features and the scikit-learn
version that wrote them.

A model is a fitted scikit-learn pipeline serialized with joblib into ``learned_model.blob``.
Unpickling runs code, so only blobs this application wrote are ever loaded (the table is ours,
behind the database's own access control). A model written by another scikit-learn major.minor
is refused: its pickled internals may not load, or may load and predict differently.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlmodel import col

from voice_agent.store.db import transaction
from voice_agent.store.learning_tables import LearnedModel, ModelKind, ModelStatus

logger = logging.getLogger(__name__)


class IncompatibleModel(Exception):
    """The stored model was trained with a scikit-learn this process cannot trust to load it."""


@cache
def installed_sklearn() -> str:
    """The installed scikit-learn's version, read without importing it (its import, scipy
    included, is most of the app's start-up: done only when a model is trained or loaded)."""
    from importlib.metadata import version

    return version("scikit-learn")


def compatible(version: str, installed: str | None = None) -> bool:
    """Same major.minor as the installed scikit-learn (pickles are not portable across them)."""
    mine = (installed or installed_sklearn()).split(".")[:2]
    return version.split(".")[:2] == mine


@dataclass(frozen=True)
class ModelInfo:
    """A stored model without its blob: what `ranking status` prints."""

    id: int
    kind: str
    version: int
    status: str
    created_at: datetime
    trained_until: datetime
    examples: int
    sklearn_version: str
    features: list[str]
    metrics: dict[str, Any]


@dataclass(frozen=True)
class LoadedModel:
    info: ModelInfo
    estimator: Any = field(repr=False)


def _info(row: LearnedModel) -> ModelInfo:
    assert row.id is not None
    return ModelInfo(
        id=row.id,
        kind=str(row.kind),
        version=row.version,
        status=str(row.status),
        created_at=row.created_at,
        trained_until=row.trained_until,
        examples=row.examples,
        sklearn_version=row.sklearn_version,
        features=json.loads(row.features),
        metrics=json.loads(row.metrics),
    )


def dumps(estimator: Any) -> bytes:
    buffer = io.BytesIO()
    import joblib

    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


class ModelStore:
    """Save, promote and load models of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(
        self,
        kind: ModelKind,
        estimator: Any,
        *,
        promote: bool,
        trained_until: datetime,
        examples: int,
        features: list[str],
        metrics: dict[str, Any],
        now: datetime,
        sklearn_version: str | None = None,
    ) -> ModelInfo:
        """Store a new version; when ``promote``, it replaces the one in use (retired)."""
        blob = dumps(estimator)
        with transaction(self._engine) as session:
            latest = session.execute(
                select(func.max(col(LearnedModel.version))).where(col(LearnedModel.kind) == kind)
            ).scalar()
            if promote:
                session.execute(
                    update(LearnedModel)
                    .where(
                        col(LearnedModel.kind) == kind,
                        col(LearnedModel.status) == ModelStatus.promoted,
                    )
                    .values(status=ModelStatus.retired)
                )
            row = LearnedModel(
                kind=kind,
                version=(latest or 0) + 1,
                status=ModelStatus.promoted if promote else ModelStatus.rejected,
                created_at=now,
                trained_until=trained_until,
                examples=examples,
                sklearn_version=sklearn_version or installed_sklearn(),
                features=json.dumps(features),
                metrics=json.dumps(metrics, sort_keys=True),
                blob=blob,
            )
            session.add(row)
            session.flush()
            return _info(row)

    def history(self, kind: ModelKind, limit: int = 10) -> list[ModelInfo]:
        """Newest first, without the blobs."""
        columns = [c for c in LearnedModel.__table__.columns if c.name != "blob"]  # type: ignore[attr-defined]
        with transaction(self._engine) as session:
            rows = session.execute(
                select(*columns)
                .where(col(LearnedModel.kind) == kind)
                .order_by(col(LearnedModel.version).desc())
                .limit(limit)
            ).all()
        return [_info(LearnedModel(**row._mapping, blob=b"")) for row in rows]

    def promoted_id(self, kind: ModelKind) -> int | None:
        with transaction(self._engine) as session:
            return session.execute(
                select(col(LearnedModel.id)).where(
                    col(LearnedModel.kind) == kind, col(LearnedModel.status) == ModelStatus.promoted
                )
            ).scalar()

    def load_promoted(self, kind: ModelKind) -> LoadedModel | None:
        """The model in use, or None; IncompatibleModel for another scikit-learn's model."""
        model_id = self.promoted_id(kind)
        return self.load(model_id) if model_id is not None else None

    def load(self, model_id: int) -> LoadedModel:
        """One stored model; IncompatibleModel for another scikit-learn's model."""
        with transaction(self._engine) as session:
            row = session.get(LearnedModel, model_id)
            if row is None:
                raise LookupError(f"no model {model_id}")
            info = _info(row)
            blob = row.blob
        if not compatible(info.sklearn_version):
            raise IncompatibleModel(
                f"{info.kind} model v{info.version} was trained with scikit-learn "
                f"{info.sklearn_version}; this process has {installed_sklearn()}: retrain it"
            )
        import joblib

        return LoadedModel(info, joblib.load(io.BytesIO(blob)))


@dataclass(frozen=True)
class ModelState:
    """What a cache holds: the model (None = use the rules) and why."""

    model: LoadedModel | None
    reason: str
    """in use | no model | incompatible: … | unreadable: …"""


class ModelCache:
    """The promoted model of one kind, kept in memory for the hot path.

    ``refresh()`` reads the database (at start, by a job every minute, after training);
    ``current(now)`` never does, so scoring inside the offer transaction costs no query. A
    model older than ``max_age`` (by its newest training example) counts as stale: the rules
    take over until a fresh one is trained.
    """

    def __init__(self, store: ModelStore, kind: ModelKind, *, max_age_days: float = 60) -> None:
        self._store = store
        self._kind = kind
        self._max_age = timedelta(days=max_age_days)
        self._lock = threading.Lock()
        self._state = ModelState(None, "not loaded")

    @property
    def state(self) -> ModelState:
        return self._state

    def refresh(self) -> ModelState:
        """Load the promoted model if it changed; any failure falls back to the rules."""
        with self._lock:
            try:
                wanted = self._store.promoted_id(self._kind)
            except Exception:
                logger.exception("reading the %s model failed; the rules rank", self._kind)
                return self._state
            held = self._state.model
            if wanted is None:
                self._state = ModelState(None, "no model")
            elif held is None or held.info.id != wanted:
                try:
                    loaded = self._store.load_promoted(self._kind)
                    self._state = ModelState(loaded, "in use" if loaded else "no model")
                except IncompatibleModel as exc:
                    logger.warning("%s", exc)
                    self._state = ModelState(None, f"incompatible: {exc}")
                except Exception as exc:  # a corrupt blob must not take the offer path down
                    logger.exception("loading the %s model failed; the rules rank", self._kind)
                    self._state = ModelState(None, f"unreadable: {type(exc).__name__}")
            return self._state

    def current(self, now: datetime | None) -> LoadedModel | None:
        """The model to use now, or None (missing, incompatible, unreadable or stale)."""
        model = self._state.model
        if model is None:
            return None
        if now is not None and now - model.info.trained_until > self._max_age:
            return None
        return model

    def why_not(self, now: datetime) -> str | None:
        """Why the rules rank instead of the model (None when the model is used)."""
        model = self._state.model
        if model is None:
            return self._state.reason
        if now - model.info.trained_until > self._max_age:
            return f"stale: trained on data up to {model.info.trained_until:%Y-%m-%d}"
        return None
