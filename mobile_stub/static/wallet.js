// The wallet page: fetch a fresh presentation each window, tick the clock and the
// countdown, and try the issuer now and then (offline banner when it cannot).
// Time comes from the wallet server (`now` in each answer) so the page and the
// presentation agree on the window even when the phone's clock display differs.
"use strict";
(function () {
  const body = document.body;
  const region = body.dataset.region || "";
  const pollS = Number(body.dataset.pollS || "300");
  const minRefetchS = Number(body.dataset.minRefetchS || "0.5");
  const q = region ? "?region=" + encodeURIComponent(region) : "";
  const $ = (id) => document.getElementById(id);
  const words = JSON.parse($("words").textContent);  // in the phone's language
  let skewS = 0;          // server clock minus page clock, seconds
  let windowStart = 0;
  let windowEnd = 0;
  let timer = null;

  const serverNow = () => Date.now() / 1000 + skewS;
  const pad = (n) => String(n).padStart(2, "0");

  function setColour(colour, colourText) {
    const frame = $("frame");
    frame.className = "frame colour-" + colour;
    body.dataset.colour = colour;
    $("status-word").textContent = colourText;
  }

  // Two sources of trouble share one banner: showing the code (from this wallet) and
  // refreshing it (from the issuer). Showing the code wins; an issuer refusal stays
  // visible until the issuer answers normally again.
  let presentationProblem = "";
  let issuerProblem = "";

  function renderProblem() {
    const el = $("problem");
    const message = presentationProblem || issuerProblem;
    el.textContent = message;
    el.hidden = !message;
  }

  function showProblem(message) {
    presentationProblem = message || "";
    renderProblem();
  }

  function tick() {
    const now = serverNow();
    const d = new Date(now * 1000);
    $("clock").textContent = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    if (windowEnd > windowStart) {
      const left = Math.max(0, windowEnd - now);
      $("countdown").textContent = String(Math.ceil(left));
      $("bar-fill").style.width = (100 * left / (windowEnd - windowStart)).toFixed(1) + "%";
    }
  }

  async function fetchPresentation() {
    clearTimeout(timer);
    let delayS = 2;
    try {
      const resp = await fetch("/v1/presentation" + q, { cache: "no-store" });
      const data = await resp.json();
      if (!resp.ok) {
        showProblem(data.message || data.error);
        $("qr").removeAttribute("src");
        $("qr").dataset.window = "";
      } else {
        showProblem("");
        skewS = data.now - Date.now() / 1000;
        windowStart = data.window_start;
        windowEnd = data.window_end;
        $("qr").src = data.qr_svg;
        $("qr").dataset.window = String(data.window_start);
        setColour(data.colour, data.colour_text);
        $("name").textContent = data.masked_name;
        $("hint").textContent = data.region + " · " + data.document_hint;
        $("basis").textContent = data.basis_text;
        $("expires").textContent = data.expires_text;
        delayS = Math.max(minRefetchS, data.refresh_in);
      }
    } catch (e) {
      showProblem(words.not_answering);
    }
    tick();
    timer = setTimeout(fetchPresentation, delayS * 1000);
  }

  async function pollIssuer() {
    try {
      const resp = await fetch("/v1/refresh" + q, { method: "POST", cache: "no-store" });
      const data = await resp.json();
      const offline = data.online === false;
      $("offline").hidden = !offline;
      issuerProblem = !offline && (!resp.ok || data.error)
        ? (data.message || words.issuer_refused)
        : "";
      renderProblem();
      if (data.changed) { fetchPresentation(); }
    } catch (e) {
      $("offline").hidden = false;
    }
  }

  window.hbWallet = { fetchPresentation: fetchPresentation, pollIssuer: pollIssuer };
  fetchPresentation();
  pollIssuer();
  setInterval(tick, 250);
  setInterval(pollIssuer, pollS * 1000);
})();
