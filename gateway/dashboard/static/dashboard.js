// simgw dashboard: renders what /events streams (server-sent events). No framework, no outside
// asset; every value goes in as text (textContent), never as HTML.
"use strict";
(function () {
  const STATES = {
    ok: ["good", "✔"], degraded: ["warn", "▲"], starting: ["calm", "◌"], switching: ["calm", "⇄"],
    resetting: ["warn", "↻"], no_sim: ["bad", "✖"], sim_locked: ["bad", "✖"], not_registered: ["bad", "✖"],
    unresponsive: ["bad", "✖"], gone: ["bad", "✖"],
  };
  const SLOTS = {
    leased: ["good", "●", "leased"], idle: ["calm", "○", "on air, idle"], standby: ["none", "–", "standby"],
    empty: ["none", "∅", "empty"], failed: ["bad", "✖", "failed"], unknown: ["none", "?", "not scanned"],
  };
  const LEASES = { preparing: ["warn", "⇄"], waiting: ["calm", "◌"], received: ["good", "✔"], repeat_waiting: ["calm", "↻"] };
  const SVG = "http://www.w3.org/2000/svg";
  const STALE_S = 4;  // the daemon sends every second; a stream ends every 8 s and reconnects at once
  let state = null, receivedAt = 0, charts = { modems: {} };

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined && child !== false)
      node.append(child instanceof Node ? child : String(child));
    return node;
  }
  const sub = (text) => (text === null || text === undefined || text === "") ? null : el("span", { class: "sub", text });
  const td = (label, ...children) => el("td", { "data-label": label }, el("div", {}, ...children));
  const wide = (label, ...children) => el("td", { "data-label": label, class: "wide" }, el("div", {}, ...children));
  const mini = (svg, caption) => el("figure", { class: "mini" }, svg, el("figcaption", { text: caption }));

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 90) return seconds + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
    return Math.round(seconds / 86400) + " d";
  }
  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + String(s).padStart(2, "0");
  }
  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  function badge(kind, icon, word, title) {
    return el("span", { class: "badge " + kind, title: title || null }, icon + " " + word);
  }

  function bars(count, dbm) {
    const box = el("span", { class: "bars", role: "img", "aria-label": (count === null ? "no" : count) + " of 4 bars" });
    for (let i = 1; i <= 4; i++) box.append(el("i", { class: count !== null && i <= count ? "on" : null }));
    return el("span", {}, box, dbm === null ? "–" : dbm + " dBm");
  }

  function chart(points, kind) {
    // 60 points, oldest first: signal as a line (-113..-51 dBm), SMS per minute as bars.
    const w = 120, h = 24, svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "chart");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const title = document.createElementNS(SVG, "title");
    const base = document.createElementNS(SVG, "line");
    base.setAttribute("class", "base");
    base.setAttribute("x1", 0); base.setAttribute("x2", w); base.setAttribute("y1", h - .5); base.setAttribute("y2", h - .5);
    svg.append(title, base);
    const step = w / Math.max(1, points.length);
    if (kind === "signal") {
      let d = "", known = points.filter((p) => p !== null);
      points.forEach((p, i) => {
        if (p === null) return;
        const y = h - 1 - (Math.min(-51, Math.max(-113, p)) + 113) / 62 * (h - 2);
        const joined = i > 0 && points[i - 1] !== null;
        d += (joined ? "L" : "M") + (i * step + step / 2).toFixed(1) + " " + y.toFixed(1) + (joined ? "" : "h.1");
      });
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("class", "line"); path.setAttribute("d", d || "M0 0");
      svg.append(path);
      title.textContent = known.length ? `signal over the last hour: ${Math.min(...known)} to ${Math.max(...known)} dBm` : "no signal readings yet";
    } else {
      const top = Math.max(1, ...points);
      points.forEach((n, i) => {
        if (!n) return;
        const r = document.createElementNS(SVG, "rect"), bh = Math.max(2, n / top * (h - 2));
        r.setAttribute("class", "bar"); r.setAttribute("x", (i * step).toFixed(1)); r.setAttribute("width", Math.max(1, step - .5).toFixed(1));
        r.setAttribute("y", (h - bh).toFixed(1)); r.setAttribute("height", bh.toFixed(1));
        svg.append(r);
      });
      title.textContent = `SMS per minute over the last hour: ${points.reduce((a, b) => a + b, 0)} in all, at most ${top === 1 && !points.some(Boolean) ? 0 : top} in a minute`;
    }
    return svg;
  }

  function modemRow(m) {
    const [kind, icon] = STATES[m.state] || ["warn", "?"];
    const history = charts.modems[m.port] || { signal: [], sms: [] };
    const who = [m.vendor, m.model].filter(Boolean).join(" ") || "identifying…";
    return el("tr", { "data-port": m.port, "data-state": m.state, class: kind === "good" ? null : kind },
      wide("Port", el("strong", { class: "mono", text: m.port.split("/").pop() }), sub(who),
        el("span", { class: "sub path mono", title: m.port, text: m.port })),
      td("State", badge(kind, icon, m.state), m.state === "ok" || !m.reason ? null
        : el("span", { class: "sub clamp", title: m.reason, text: m.reason })),
      td("Signal", el("span", { class: "nowrap" }, bars(m.bars, m.signal_dbm))),
      td("Network", el("span", { text: m.operator || "–" }), sub(m.registration)),
      td("SIM", el("span", { class: "mono nowrap", text: m.iccid_tail ? "ICCID …" + m.iccid_tail : "–" }),
        m.number ? el("span", { class: "sub mono nowrap", text: m.number }) : null),
      td("SMS", el("span", { class: "nowrap", text: m.sms_today + " today" }),
        sub(m.last_sms_age === null ? "none yet" : "last " + age(m.last_sms_age) + " ago")),
      td("Errors", el("span", { class: "clamp", title: m.last_error, text: m.last_error || "none" }),
        sub(m.recoveries ? m.recoveries + " recoveries" : "no recoveries")),
      wide("Last hour", el("div", { class: "minis" }, mini(chart(history.signal, "signal"), "signal"),
        mini(chart(history.sms, "sms"), "SMS / min"))));
  }

  function leaseRow(l) {
    const [kind, icon] = LEASES[l.state] || ["none", "•"];
    return el("tr", { "data-lease": l.id, "data-state": l.state },
      wide("Lease", el("span", { class: "mono", text: l.id })), td("Service", l.service),
      td("State", badge(kind, icon, l.state.replace("_", " "))), td("Number", el("span", { class: "mono", text: l.number || "–" })),
      td("SMS", String(l.sms)), td("Time left", el("span", { class: "left mono", "data-left": l.seconds_left, text: clock(l.seconds_left) })));
  }

  function bank(b) {
    const grid = el("div", { class: "slots" });
    for (const s of b.slots) {
      const [kind, icon, word] = SLOTS[s.kind] || SLOTS.unknown;
      const where = s.radio_no ? (s.on_air ? "on air, radio " : "radio ") + s.radio_no : "no radio";
      grid.append(el("div", { class: "slot " + kind, "data-slot": s.slot, title: `slot ${s.slot}: ${s.detail}; ${where}` },
        el("b", { text: `${icon} ${s.slot}` }), el("span", { text: word }),
        el("span", { text: s.radio_no ? "radio " + s.radio_no : "no radio" }),
        s.lease ? el("span", { class: "mono", text: s.lease }) : null));
    }
    const wait = b.lease_wait && b.lease_wait.count ? `waited for a radio: p50 ${b.lease_wait.p50_s} s, p90 ${b.lease_wait.p90_s} s` : "no lease has waited for a radio yet";
    return el("div", { class: "bank" }, el("h3", { text: "Bank " + b.name }),
      el("p", { class: "legend", text: "Radios: " + b.radios.map((r, i) => `${i + 1} ${r.split("/").pop()}`).join(" · ") }),
      el("p", { class: "legend", text: `${b.queued} lease(s) queued for a radio · ${b.switching.length ? "switching: " + b.switching.join(", ") : "no switch running"} · ${b.switch_failures} failed switch(es) · ${wait}` }),
      grid);
  }

  function hub(m) {
    return el("dl", { class: "facts market", "data-market": m.name },
      el("dt", { text: "Marketplace" }), el("dd", { class: "mono", text: m.name }),
      el("dt", { text: "Requests" }), el("dd", { text: `${m.answered} answered, ${m.refused} refused` }),
      el("dt", { text: "SMS pushed" }), el("dd", { text: `${m.pushed} delivered, ${m.push_failures} failed` }),
      m.last_error ? el("dt", { text: "Last push error" }) : null, m.last_error ? el("dd", { text: m.last_error }) : null);
  }

  function market(m) {
    if (m.kind === "smshub") return hub(m);
    const status = m.connected ? badge("good", "✔", "connected") : badge("bad", "✖", "disconnected");
    const since = m.since ? age(state.at - m.since) : "–";
    return el("dl", { class: "facts market", "data-market": m.name },
      el("dt", { text: "Marketplace" }), el("dd", { class: "mono", text: m.name }),
      el("dt", { text: "Session" }), el("dd", {}, status, " for " + since),
      el("dt", { text: "Outbox" }), el("dd", { text: m.outbox_depth === null ? "–" : m.outbox_depth + " unacknowledged" }),
      el("dt", { text: "Oldest unacked" }), el("dd", { text: m.outbox_depth ? age(m.oldest_unacked_s) : "none waiting" }),
      m.connected || !m.last_error ? null : el("dt", { text: "Last error" }), m.connected || !m.last_error ? null : el("dd", { text: m.last_error }));
  }

  function render() {
    if (!state) return;
    document.getElementById("gateway").textContent = state.gateway;
    document.title = "simgw · " + state.gateway;
    const ok = state.modems.filter((m) => m.state === "ok").length;
    document.getElementById("t-modems").textContent = `${ok} / ${state.modems.length}`;
    document.getElementById("t-leases").textContent = String(state.leases.length);
    const sessions = state.markets.filter((m) => m.kind !== "smshub"), up = sessions.filter((m) => m.connected).length;
    document.getElementById("t-market").textContent = sessions.length ? (up === sessions.length ? "✔ connected" : "✖ disconnected")
      : (state.markets.length ? "hub only" : "none");
    const ratio = state.pi.disk_free_ratio;
    document.getElementById("t-disk").textContent = ratio === null ? "–" : (ratio < .1 ? "▲ " : "") + (ratio * 100).toFixed(0) + " %";
    document.getElementById("masked-note").textContent = state.numbers_masked ? "numbers masked" : "";
    const modems = document.getElementById("modems");
    modems.replaceChildren(...(state.modems.length ? state.modems.map(modemRow)
      : [el("tr", {}, el("td", { colspan: 8, class: "empty", text: "no modem configured or found" }))]));
    const leases = document.getElementById("leases");
    leases.replaceChildren(...(state.leases.length ? state.leases.map(leaseRow)
      : [el("tr", {}, el("td", { colspan: 6, class: "empty", text: "no active lease" }))]));
    document.getElementById("banks-section").hidden = !state.banks.length;
    document.getElementById("banks").replaceChildren(...state.banks.map(bank));
    document.getElementById("legend").textContent = "Slots: ● leased · ○ on air, idle · – standby (waits for its radio) · ∅ empty · ✖ failed · ? not scanned";
    document.getElementById("markets").replaceChildren(...(state.markets.length ? state.markets.map(market)
      : [el("p", { class: "facts market", text: "no marketplace configured" })]));
    const pi = state.pi;
    const facts = [["Database", bytes(pi.database_bytes)], ["Disk free", pi.disk_free_bytes === null ? "–" : `${bytes(pi.disk_free_bytes)} (${(pi.disk_free_ratio * 100).toFixed(1)} %)`],
      ["Commits", pi.commits_per_second + " /s"], ["Commit failures", String(pi.commit_failures)], ["Uptime", age(pi.uptime_s)], ["Version", "simgw " + pi.version]];
    document.getElementById("pi").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }

  function tick() {
    // Time left counts down between updates too; data older than STALE_S is marked as such.
    const passed = (performance.now() - receivedAt) / 1000;
    if (state && passed > STALE_S) live(false, passed);
    for (const node of document.querySelectorAll(".left[data-left]")) node.textContent = clock(Number(node.dataset.left) - passed);
  }

  function live(on, staleFor) {
    const node = document.getElementById("live");
    node.className = "live " + (on ? "on" : "off");
    node.querySelector(".dot").textContent = on ? "●" : "○";
    node.querySelector(".word").textContent = on ? "live"
      : "reconnecting…" + (staleFor ? ` data ${age(staleFor)} old` : "");
    document.body.classList.toggle("stale", !on && Boolean(staleFor));
  }

  function connect() {
    const source = new EventSource("events");
    source.addEventListener("state", (event) => { state = JSON.parse(event.data); receivedAt = performance.now(); live(true); render(); });
    source.addEventListener("charts", (event) => { charts = JSON.parse(event.data); render(); });
    source.addEventListener("error", () => {
      // The stream ends every few seconds by design and reconnects by itself; only a refusal closes it.
      if (source.readyState === EventSource.CLOSED) { source.close(); live(false); setTimeout(connect, 3000); }
    });
  }
  connect();
  setInterval(tick, 1000);
})();
