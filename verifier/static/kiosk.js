// Polls /v1/status and paints the verdict panel. Text goes in with textContent only:
// names come from credentials and must never be interpreted as HTML.
"use strict";
(function () {
  const pollMs = Number(document.body.dataset.pollMs) || 300;
  const $ = (id) => document.getElementById(id);
  const panel = $("verdict");

  function fmtAge(s) {
    if (s === null || s === undefined) return "never";
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return Math.round(s / 3600) + " h";
  }

  function paint(status) {
    const v = status.verdict;
    const decision = v ? v.decision : "ready";
    panel.className = "verdict " + decision;
    panel.dataset.decision = decision;
    $("label").textContent = v ? v.label : "READY";
    $("message").textContent = v
      ? (v.messages.length ? v.messages.join(" ") : "Valid health code.")
      : "Show the health code to the camera.";
    const holder = v && v.holder;
    $("holder").hidden = !holder;
    $("masked-name").textContent = holder ? holder.masked_name : "";
    $("document-hint").textContent = holder ? holder.document_hint : "";
    $("region").textContent = v && v.region ? v.region : "";
    $("colour").textContent = v && v.colour ? v.colour.toUpperCase() : "";

    const ages = status.sync_age_s || {};
    const parts = Object.keys(ages).sort().map((r) => r + " " + fmtAge(ages[r]));
    const online = status.online === false ? " (offline)" : "";
    $("sync-text").textContent = (parts.length ? parts.join(", ") : "never") + online;
    $("sync").className = status.sync_stale ? "sync stale" : "sync";
    const alarm = $("alarm");
    alarm.hidden = !status.alarm;
    alarm.textContent = status.alarm ? "LEDGER ALARM: " + status.alarm : "";
    // Shared replay memory down: this lane alone remembers the codes it saw.
    const replay = $("replay");
    const degraded = !!(status.replay && status.replay.degraded);
    replay.hidden = !degraded;
    replay.className = degraded ? "sync stale" : "sync";
    replay.textContent = degraded
      ? "Replay check: this lane only (" + status.replay.detail + ")"
      : "";

    const list = $("recent");
    list.replaceChildren();
    for (const row of status.recent || []) {
      const li = document.createElement("li");
      li.className = row.decision;
      const t = new Date(row.at * 1000).toLocaleTimeString();
      li.textContent = t + "  " + row.label + "  " + (row.region || "?") +
        (row.reasons.length ? "  " + row.reasons.join(", ") : "");
      list.appendChild(li);
    }
  }

  async function poll() {
    try {
      const r = await fetch("/v1/status", { cache: "no-store" });
      if (r.ok) paint(await r.json());
    } catch (e) {
      $("sync-text").textContent = "kiosk disconnected";
    }
    setTimeout(poll, pollMs);
  }
  poll();
})();
