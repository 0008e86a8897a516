"""A snapshot's files as message attachments: what the notifier attaches to a
``report.ready`` e-mail (kept apart from the report code so the notifier loads no writers)."""

from __future__ import annotations

import base64
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models.report_schedules import ReportSnapshotFile


async def snapshot_attachments(
    session: AsyncSession, *, snapshot_id: uuid.UUID
) -> list[dict[str, str]]:
    """A snapshot's files as a message's attachments (``shared.events.ReportFile`` dicts):
    what the notifier attaches to a ``report.ready`` e-mail."""
    files = await session.scalars(
        select(ReportSnapshotFile)
        .where(ReportSnapshotFile.snapshot_id == snapshot_id)
        .order_by(ReportSnapshotFile.format)
    )
    return [
        {
            "filename": file.filename,
            "content_type": file.content_type,
            "content_base64": base64.b64encode(file.content).decode("ascii"),
        }
        for file in files
    ]


__all__ = ["snapshot_attachments"]
