"""The overview page's words in the console's two languages, kept together so they can
move into a message catalog as they are: key -> (English, Chinese)."""

from __future__ import annotations

from markupsafe import Markup, escape

TEXT: dict[str, tuple[str, str]] = {
    "title": ("Overview", "概览"),
    "issued": (
        "Credentials issued per hour, last 24 h (UTC)",
        "每小时签发凭证（过去 24 小时，UTC）",
    ),
    "revoked": ("Revocations per hour, last 24 h (UTC)", "每小时撤销（过去 24 小时，UTC）"),
    "total": ("total", "合计"),
    "outbox": ("Anchoring outbox", "上链待办队列"),
    "outbox_depth": ("entries waiting for the log", "条目等待上链"),
    "outbox_oldest": ("oldest waiting", "最早等待"),
    "outbox_limit": ("alert past", "告警阈值"),
    "freshness": ("Checkpoint freshness", "检查点新鲜度"),
    "freshness_note": (
        "Age of the newest cosignature on each region's latest checkpoint; stations refuse "
        "a view older than",
        "各区域最新检查点上最新联署的时长；验证站拒绝超过此时长的视图：",
    ),
    "own": ("this region", "本区域"),
    "peer": ("peer region", "对方区域"),
    "unreachable": ("not reachable", "无法连接"),
    "witnesses": ("Witness status", "见证方状态"),
    "witness": ("Witness", "见证方"),
    "region": ("Log", "日志"),
    "cosignature": ("Cosignature", "联署"),
    "age": ("Age", "时长"),
    "present": ("present", "已签"),
    "missing": ("missing", "缺失"),
    "quorum": ("Quorum", "法定见证"),
    "met": ("met", "已满足"),
    "not_met": ("not met", "未满足"),
    "alarms": ("Recent alarms", "最近警报"),
    "no_alarms": ("No alarms: no fork or misbehaviour evidence.", "无警报：未发现分叉或违规证据。"),
    "alarms_unavailable": ("Alarms could not be read", "无法读取警报"),
    "detected": ("Detected", "发现时间"),
    "kind": ("Kind", "类型"),
    "size": ("Tree size", "大小"),
    "hour": ("hour", "时"),
}


def t(key: str) -> Markup:
    """English, then the Chinese in the console's muted style (as every page does)."""
    en, zh = TEXT[key]
    return Markup('{} <span class="zh">{}</span>').format(escape(en), escape(zh))


def en(key: str) -> str:
    return TEXT[key][0]
