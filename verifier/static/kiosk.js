// Polls /v1/status and paints the page. Text goes in with textContent only: names
// come from credentials and must never be interpreted as HTML. Every word shown comes
// from the server in the station's language (the status JSON, or the #words block).
"use strict";
(function () {
  const pollMs = Number(document.body.dataset.pollMs) || 300;
  const $ = (id) => document.getElementById(id);
  const words = JSON.parse($("words").textContent);
  const panel = $("verdict");
  const SOUND_KEY = "hb-kiosk-sound";

  // Distinct tones per decision (Web Audio): one short high beep for ADMIT, two
  // middle beeps for CHECK, a long low buzz for DENY, and a two-tone siren repeated
  // every few seconds for a ledger or sync alarm until staff silence it.
  // Each step: [frequency Hz (0 = pause), seconds, waveform].
  const TONES = {
    admit: [[1046, 0.14, "sine"]],
    manual_check: [[660, 0.16, "triangle"], [0, 0.1], [660, 0.16, "triangle"]],
    deny: [[196, 0.7, "square"]],
    alarm: [[880, 0.25, "sawtooth"], [440, 0.25, "sawtooth"], [880, 0.25, "sawtooth"], [440, 0.25, "sawtooth"]],
  };
  const ALARM_REPEAT_MS = 4000;
  let audio = null;
  let soundOn = localStorage.getItem(SOUND_KEY) !== "off";
  const played = [];  // what was played, newest last (read by the browser tests)

  function play(kind) {
    if (!soundOn) return;
    played.push(kind);
    try {
      audio = audio || new AudioContext();
      if (audio.state === "suspended") audio.resume();
      let t = audio.currentTime + 0.02;
      for (const [freq, secs, wave] of TONES[kind]) {
        if (freq > 0) {
          const osc = audio.createOscillator();
          const gain = audio.createGain();
          osc.type = wave;
          osc.frequency.value = freq;
          gain.gain.setValueAtTime(0.35, t);
          gain.gain.exponentialRampToValueAtTime(0.001, t + secs);
          osc.connect(gain).connect(audio.destination);
          osc.start(t);
          osc.stop(t + secs);
        }
        t += secs;
      }
    } catch (e) {
      // No audio device: the page still shows everything.
    }
  }

  function paintSound() {
    $("sound").textContent = soundOn ? words.sound_on : words.sound_off;
    $("sound").setAttribute("aria-pressed", soundOn ? "true" : "false");
  }
  $("sound").addEventListener("click", () => {
    soundOn = !soundOn;
    localStorage.setItem(SOUND_KEY, soundOn ? "on" : "off");
    paintSound();
    if (soundOn && audio) audio.resume();
  });
  paintSound();

  let alarmKey = "";       // which alarm is up (text); a new one sounds again
  let silencedKey = null;  // the alarm staff silenced
  let alarmTimer = null;
  $("silence").addEventListener("click", () => {
    silencedKey = alarmKey;
    $("silence").hidden = true;
  });

  function paintAlarms(status) {
    const fork = $("fork-alarm");
    fork.hidden = !status.fork_alarm;
    fork.textContent = status.fork_alarm ? status.fork_alarm + " (" + status.alarm + ")" : "";
    const sync = $("sync-alarm");
    sync.hidden = !status.sync_alarm;
    sync.textContent = status.sync_alarm || "";
    const key = (status.fork_alarm || "") + "|" + (status.sync_alarm || "");
    const any = Boolean(status.fork_alarm || status.sync_alarm);
    document.body.classList.toggle("alarmed", any);
    document.body.classList.toggle("forked", Boolean(status.fork_alarm));
    alarmKey = any ? key : "";
    $("silence").hidden = !any || silencedKey === key;
    if (any && silencedKey !== key && alarmTimer === null) {
      play("alarm");
      alarmTimer = setInterval(() => {
        if (alarmKey && silencedKey !== alarmKey) play("alarm");
      }, ALARM_REPEAT_MS);
    } else if ((!any || silencedKey === key) && alarmTimer !== null) {
      clearInterval(alarmTimer);
      alarmTimer = null;
    }
  }

  let cameraLive = true;
  function paintCamera(camera) {
    const view = $("view");
    $("camera-off").hidden = camera.live;
    view.hidden = !camera.live;
    $("camera-off-text").textContent = camera.live ? "" : camera.text;
    if (camera.live && !cameraLive) {
      // The MJPEG response ended while the camera was away: open it again.
      view.src = "/stream.mjpg?since=" + Date.now();
    }
    cameraLive = camera.live;
  }

  let lastSeq = null;
  function paint(status) {
    const v = status.verdict;
    const decision = v ? v.decision : "ready";
    panel.className = "verdict " + decision;
    panel.dataset.decision = decision;
    $("label").textContent = v ? v.label : words.ready;
    $("message").textContent = v ? v.summary : words.show_code;
    const holder = v && v.holder;
    $("holder").hidden = !holder;
    $("masked-name").textContent = holder ? holder.masked_name : "";
    $("document-hint").textContent = holder ? holder.document_hint : "";
    $("region").textContent = v && v.region ? v.region : "";
    $("colour").textContent = v ? v.colour_text : "";
    const newest = status.recent && status.recent.length ? status.recent[0].seq : 0;
    if (lastSeq !== null && newest > lastSeq && status.recent[0]) {
      play(status.recent[0].decision);
    }
    lastSeq = newest;

    $("sync-text").textContent = status.sync_text;
    $("sync").className = status.sync_stale ? "sync stale" : "sync";
    paintAlarms(status);
    paintCamera(status.camera);
    // Shared replay memory down: this lane alone remembers the codes it saw.
    const replay = $("replay");
    replay.hidden = !status.replay_text;
    replay.className = status.replay_text ? "sync stale" : "sync";
    replay.textContent = status.replay_text || "";

    const list = $("recent");
    list.replaceChildren();
    for (const row of status.recent || []) {
      const li = document.createElement("li");
      li.className = row.decision;
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = row.time_text;
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = row.label;
      const region = document.createElement("span");
      region.className = "region";
      region.textContent = row.region || "—";
      const what = document.createElement("span");
      what.className = "words";
      what.textContent = row.words;
      li.append(time, " ", label, " ", region, " ", what);
      list.appendChild(li);
    }
  }

  for (const b of document.querySelectorAll("button.lang")) {
    b.addEventListener("click", async () => {
      const r = await fetch("/v1/language", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ language: b.dataset.language }),
      });
      if (r.ok) location.reload();
    });
  }

  async function poll() {
    try {
      const r = await fetch("/v1/status", { cache: "no-store" });
      if (r.ok) {
        const status = await r.json();
        if (status.language !== document.body.dataset.language) {
          location.reload();  // switched from another kiosk screen
          return;
        }
        paint(status);
      }
    } catch (e) {
      $("sync-text").textContent = words.kiosk_disconnected;
    }
    setTimeout(poll, pollMs);
  }
  window.hbKiosk = { played: played, tones: TONES };
  poll();
})();
