// The playground page: a small Slack client for the loopback Slack that Slotbot talks to.
// It polls /api/state, renders messages and Block Kit, and sends what you type or click.
"use strict";

const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const POLL_MS = 700;

const ui = {
  state: null,
  version: -1,
  view: null, // a channel id, or "calendars"
  week: null, // ISO date of the calendar week shown; null = this week
  openFiles: new Set(),
  fileText: new Map(),
  pending: false,
};

const $ = (id) => document.getElementById(id);

// --- text ------------------------------------------------------------------------------

function escapeHtml(text) {
  return String(text)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

// Slack escapes exactly these three in message text.
function unescapeSlack(text) {
  return String(text).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function person(id) {
  const people = (ui.state && ui.state.people) || [];
  return people.find((p) => p.id === id);
}

function ordinal(n) {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return n + "th";
  return n + ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
}

function localDay(date) {
  return date.toLocaleDateString("en-CA"); // YYYY-MM-DD in the browser's zone
}

// Slack's <!date^ts^format|fallback>: rendered in the viewer's own zone.
function formatDate(seconds, format, fallback) {
  const date = new Date(seconds * 1000);
  if (!Number.isFinite(seconds) || Number.isNaN(date.getTime())) return escapeHtml(fallback);
  const part = (options) => date.toLocaleString("en-US", options);
  const month = part({ month: "long" });
  const monthShort = part({ month: "short" });
  const weekday = part({ weekday: "long" });
  const dayNum = Number(part({ day: "numeric" }));
  const year = part({ year: "numeric" });
  const plain = {
    date_num: localDay(date),
    date: `${month} ${ordinal(dayNum)}, ${year}`,
    date_short: `${monthShort} ${dayNum}, ${year}`,
    date_long: `${weekday}, ${month} ${ordinal(dayNum)}, ${year}`,
  };
  const today = new Date();
  const shift = (days) => localDay(new Date(today.getTime() + days * 86400000));
  const relative = { [shift(-1)]: "yesterday", [shift(0)]: "today", [shift(1)]: "tomorrow" }[
    localDay(date)
  ];
  const values = {
    ...plain,
    date_pretty: relative || plain.date,
    date_short_pretty: relative || plain.date_short,
    date_long_pretty: relative || plain.date_long,
    time: date.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" }),
    time_secs: date.toLocaleTimeString(undefined, {
      hour: "numeric",
      minute: "2-digit",
      second: "2-digit",
    }),
    ago: agoText(date),
  };
  const text = format.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole));
  const title = date.toLocaleString(undefined, {
    dateStyle: "full",
    timeStyle: "short",
    timeZone: ZONE,
  });
  return `<time class="slack-date" datetime="${date.toISOString()}" title="${escapeHtml(
    title + " (" + ZONE + ")"
  )}">${escapeHtml(text)}</time>`;
}

function agoText(date) {
  const minutes = Math.round((Date.now() - date.getTime()) / 60000);
  if (Math.abs(minutes) < 1) return "just now";
  const unit = Math.abs(minutes) < 60 ? ["minute", minutes] : ["hour", Math.round(minutes / 60)];
  const n = Math.abs(unit[1]);
  const words = `${n} ${unit[0]}${n === 1 ? "" : "s"}`;
  return unit[1] >= 0 ? `${words} ago` : `in ${words}`;
}

// One <…> token of Slack's message format.
function angle(inner) {
  const [target, ...rest] = inner.split("|");
  const label = rest.join("|");
  if (target.startsWith("@")) {
    const who = person(target.slice(1));
    const name = who ? who.name : label || target.slice(1);
    return `<span class="mention">@${escapeHtml(unescapeSlack(name))}</span>`;
  }
  if (target.startsWith("#")) {
    return `<span class="mention">#${escapeHtml(unescapeSlack(label || target.slice(1)))}</span>`;
  }
  if (target.startsWith("!date^")) {
    const [, ts, format] = target.split("^");
    return formatDate(Number(ts), format || "{date}", unescapeSlack(label));
  }
  if (target.startsWith("!")) {
    const name = label || target.slice(1).split("^")[0];
    return `<span class="mention">${escapeHtml(name.startsWith("@") ? name : "@" + name)}</span>`;
  }
  const url = unescapeSlack(target);
  if (/^(https?:|mailto:)/i.test(url)) {
    const text = label ? unescapeSlack(label) : url;
    return `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(
      text
    )}</a>`;
  }
  return escapeHtml(unescapeSlack(label || target));
}

// Slack mrkdwn → HTML. Tokens are held aside first so formatting can wrap them (*<!date…>*).
function mrkdwn(text) {
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let s = String(text || "");
  s = s.replace(/```([\s\S]*?)```/g, (_, code) =>
    hold(`<pre class="code-block">${escapeHtml(unescapeSlack(code.replace(/^\n/, "")))}</pre>`)
  );
  s = s.replace(/`([^`\n]+)`/g, (_, code) => hold(`<code>${escapeHtml(unescapeSlack(code))}</code>`));
  s = s.replace(/<([^<>\n]+)>/g, (_, inner) => hold(angle(inner)));
  s = escapeHtml(unescapeSlack(s));
  const edge = "(^|[\\s(\\u0000\\-\\/\"'\\[])";
  const after = "(?=$|[\\s).,!?:;\\u0000\\-\\/\"'\\]])";
  s = s.replace(new RegExp(`${edge}\\*(?!\\s)([^*\\n]*?[^\\s*])\\*${after}`, "g"), "$1<b>$2</b>");
  s = s.replace(new RegExp(`${edge}_(?!\\s)([^_\\n]*?[^\\s_])_${after}`, "g"), "$1<i>$2</i>");
  s = s.replace(new RegExp(`${edge}~(?!\\s)([^~\\n]*?[^\\s~])~${after}`, "g"), "$1<s>$2</s>");
  s = s
    .split("\n")
    .map((line) => (line.startsWith("&gt; ") ? `<blockquote>${line.slice(5)}</blockquote>` : line))
    .join("\n")
    .replace(/<\/blockquote>\n/g, "</blockquote>")
    .replace(/\n/g, "<br>");
  s = s.replace(/:white_check_mark:/g, "✅").replace(/:calendar:/g, "📅").replace(/:x:/g, "❌");
  s = s.replace(/:warning:/g, "⚠️").replace(/:hourglass_flowing_sand:/g, "⏳");
  for (let i = 0; i < 3 && s.includes("\u0000"); i++) {
    s = s.replace(/\u0000(\d+)\u0000/g, (_, n) => held[Number(n)]);
  }
  return s;
}

function textObject(obj) {
  if (!obj) return "";
  if (obj.type === "plain_text") return escapeHtml(obj.text).replace(/\n/g, "<br>");
  return mrkdwn(obj.text);
}

// --- Block Kit ---------------------------------------------------------------------------

function element(el, message) {
  if (!el) return "";
  if (el.type === "button") {
    const style = el.style ? ` ${el.style}` : "";
    const url = el.url ? ` data-url="${escapeHtml(el.url)}"` : "";
    return `<button type="button" class="bk-button${style}" data-action-id="${escapeHtml(
      el.action_id || ""
    )}" data-value="${escapeHtml(el.value || "")}" data-ts="${escapeHtml(
      message.ts
    )}" data-channel="${escapeHtml(message.channel)}"${url}>${escapeHtml(
      (el.text && el.text.text) || "Button"
    )}</button>`;
  }
  if (el.type === "image") {
    return `<span class="bk-image" title="${escapeHtml(el.alt_text || "")}">🖼</span>`;
  }
  if (el.type === "plain_text" || el.type === "mrkdwn") return `<span>${textObject(el)}</span>`;
  const placeholder = (el.placeholder && el.placeholder.text) || el.type.replace(/_/g, " ");
  return `<span class="bk-unsupported" title="${escapeHtml(el.type)}">${escapeHtml(
    placeholder
  )} ▾</span>`;
}

function block(b, message) {
  switch (b.type) {
    case "section": {
      const fields = (b.fields || []).map((f) => `<div>${textObject(f)}</div>`).join("");
      return `<div class="bk-section"><div class="bk-section-text">${textObject(b.text)}${
        fields ? `<div class="bk-fields">${fields}</div>` : ""
      }</div>${b.accessory ? `<div class="bk-accessory">${element(b.accessory, message)}</div>` : ""}</div>`;
    }
    case "header":
      return `<div class="bk-header">${textObject(b.text)}</div>`;
    case "divider":
      return `<hr class="bk-divider">`;
    case "context":
      return `<div class="bk-context">${(b.elements || [])
        .map((e) => element(e, message))
        .join("")}</div>`;
    case "actions":
      return `<div class="bk-actions">${(b.elements || [])
        .map((e) => element(e, message))
        .join("")}</div>`;
    case "image":
      return `<div class="bk-image-block">🖼 ${escapeHtml(b.alt_text || "image")}</div>`;
    case "markdown":
      return `<div class="bk-section-text">${mrkdwn(b.text)}</div>`;
    case "rich_text":
      return `<div class="bk-section-text">${richText(b.elements || [])}</div>`;
    default:
      return `<div class="bk-unsupported">[${escapeHtml(b.type)} block]</div>`;
  }
}

function richText(elements) {
  return elements
    .map((e) => {
      if (Array.isArray(e.elements)) return richText(e.elements);
      if (e.type === "text") return escapeHtml(e.text).replace(/\n/g, "<br>");
      if (e.type === "user") return angle("@" + e.user_id);
      if (e.type === "link") return angle(e.url + (e.text ? "|" + e.text : ""));
      return "";
    })
    .join("");
}

// --- messages ----------------------------------------------------------------------------

// Drawn here rather than taken from an emoji font, which a machine may not have.
const BOT_FACE = `<svg viewBox="0 0 36 36" width="36" height="36" aria-hidden="true">
  <rect x="0" y="0" width="36" height="36" rx="6" fill="#4a154b"/>
  <rect x="7" y="9" width="22" height="20" rx="3" fill="#fff"/>
  <rect x="7" y="9" width="22" height="6" rx="2" fill="#e01e5a"/>
  <rect x="11" y="6" width="3" height="6" rx="1.5" fill="#fff"/>
  <rect x="22" y="6" width="3" height="6" rx="1.5" fill="#fff"/>
  <path d="M12 22l4 4 8-8" stroke="#2bac76" stroke-width="3" fill="none" stroke-linecap="round" stroke-linejoin="round"/>
</svg>`;
const EYE = `<svg viewBox="0 0 20 20" width="13" height="13" aria-hidden="true"><path fill="currentColor" d="M10 4C5.5 4 2.2 7.1 1 10c1.2 2.9 4.5 6 9 6s7.8-3.1 9-6c-1.2-2.9-4.5-6-9-6zm0 10a4 4 0 110-8 4 4 0 010 8zm0-6a2 2 0 100 4 2 2 0 000-4z"/></svg>`;

const COLOURS = ["#e8912d", "#2bac76", "#1d9bd1", "#e01e5a", "#9f66c8", "#4a154b", "#36c5f0"];

function avatar(userId) {
  const who = person(userId) || { name: "?" };
  if (who.handle === "slotbot") return `<div class="avatar bot">${BOT_FACE}</div>`;
  if (who.handle === "slackbot") return `<div class="avatar slackbot">S</div>`;
  let hash = 0;
  for (const c of userId) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return `<div class="avatar" style="background:${COLOURS[hash % COLOURS.length]}">${escapeHtml(
    who.name.slice(0, 1)
  )}</div>`;
}

function clock(ts) {
  return new Date(Number(ts) * 1000).toLocaleTimeString(undefined, {
    hour: "numeric",
    minute: "2-digit",
  });
}

function fileCard(fileId) {
  const file = ui.state.files[fileId];
  if (!file) return "";
  const open = ui.openFiles.has(fileId);
  const text = ui.fileText.get(fileId);
  return `<div class="file" data-file-id="${escapeHtml(fileId)}">
    <div class="file-row">
      <div class="file-icon">ICS</div>
      <div class="file-info">
        <div class="file-name">${escapeHtml(file.title)}</div>
        <div class="file-meta">Calendar invite · ${Math.max(1, Math.round(file.size / 1024))} KB</div>
      </div>
      <button type="button" class="file-open" data-file-id="${escapeHtml(fileId)}">${
        open ? "Hide" : "Open"
      } .ics</button>
      <a class="file-download" href="${escapeHtml(file.url)}" download="${escapeHtml(
        file.name
      )}">Download</a>
    </div>
    ${open ? `<pre class="file-text">${escapeHtml(text === undefined ? "Loading…" : text)}</pre>` : ""}
  </div>`;
}

function messageHtml(m, compact) {
  const who = person(m.user) || { name: m.user };
  const body = m.blocks && m.blocks.length
    ? m.blocks.map((b) => block(b, m)).join("")
    : `<div class="text">${m.echo && !m.bot ? escapeHtml(unescapeSlack(m.text)) : mrkdwn(m.text)}</div>`;
  const files = (m.files || []).map(fileCard).join("");
  const classes = ["message"];
  if (m.ephemeral) classes.push("ephemeral");
  if (m.echo) classes.push("echo");
  if (compact) classes.push("compact");
  const head = compact
    ? `<div class="gutter-time">${clock(m.ts)}</div>`
    : avatar(m.user);
  const meta = compact
    ? ""
    : `<div class="meta"><span class="name">${escapeHtml(who.name)}</span>${
        m.bot ? '<span class="badge">APP</span>' : ""
      }<span class="time">${clock(m.ts)}</span></div>`;
  // The command line is the client's own echo, not a message anyone was sent.
  const note = m.ephemeral && !(m.echo && !m.bot)
    ? `<div class="only-you"><span class="eye">${EYE}</span>Only visible to you</div>`
    : "";
  return `<div class="${classes.join(" ")}" data-ts="${escapeHtml(m.ts)}" data-user="${escapeHtml(
    m.user
  )}">${head}<div class="content">${note}${meta}${body}${files}${
    // Slack marks edits of normal messages; a replaced ephemeral one just changes.
    m.edited && !m.ephemeral ? '<span class="edited">(edited)</span>' : ""
  }</div></div>`;
}

function introHtml(channel) {
  const you = person(ui.state.you);
  const colleagues = ui.state.people
    .filter((p) => p.place)
    .map((p) => `<b>@${escapeHtml(p.handle)}</b> ${escapeHtml(p.place)}`)
    .join(", ");
  const where = channel.kind === "im"
    ? "This is your direct message with <b>Slotbot</b>. Ask in plain words, no slash needed."
    : "This is the very beginning of <b>#general</b>. Use <code>/schedule …</code> here; only you see the offer.";
  return `<div class="intro"><div class="intro-title">${
    channel.kind === "im" ? "Slotbot" : "# general"
  }</div><p>${where}</p><p>A local playground: Slotbot's real handlers answer signed requests from a
  loopback Slack, on SQLite. You are <b>${escapeHtml(you ? you.name : "you")}</b>, in
  <b>${escapeHtml(ZONE)}</b>. Colleagues: ${colleagues}.</p></div>`;
}

function renderMessages() {
  const list = $("messages");
  const channel = ui.state.channels.find((c) => c.id === ui.view);
  if (!channel) return;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const mine = ui.state.messages.filter((m) => m.channel === ui.view);
  const shown = new Set(mine.filter((m) => !m.thread_ts).map((m) => m.ts));
  const parts = [introHtml(channel)];
  let previous = null;
  for (const m of mine) {
    if (m.thread_ts && shown.has(m.thread_ts)) continue;
    const compact = previous && previous.user === m.user && previous.ephemeral === m.ephemeral &&
      Number(m.ts) - Number(previous.ts) < 300 && !m.ephemeral;
    parts.push(messageHtml(m, compact));
    const replies = mine.filter((r) => r.thread_ts === m.ts);
    if (replies.length) {
      parts.push(
        `<div class="thread"><div class="thread-label">${replies.length} ${
          replies.length === 1 ? "reply" : "replies"
        }</div>${replies.map((r) => messageHtml(r, false)).join("")}</div>`
      );
    }
    previous = m;
  }
  list.innerHTML = parts.join("");
  if (atBottom || ui.pending) list.scrollTop = list.scrollHeight;
}

function renderSidebar() {
  const item = (c) => {
    const label = c.kind === "im"
      ? `<span class="nav-icon presence">●</span>${escapeHtml(c.name)}<span class="badge">APP</span>`
      : `<span class="nav-icon">#</span>${escapeHtml(c.name)}`;
    return `<li><button type="button" class="nav-item${ui.view === c.id ? " active" : ""}" id="nav-${
      c.kind === "im" ? "dm" : c.name
    }" data-channel="${escapeHtml(c.id)}">${label}</button></li>`;
  };
  $("channel-list").innerHTML = ui.state.channels.filter((c) => c.kind !== "im").map(item).join("");
  $("dm-list").innerHTML = ui.state.channels.filter((c) => c.kind === "im").map(item).join("");
  $("nav-calendars").classList.toggle("active", ui.view === "calendars");
  $("people-list").innerHTML = ui.state.people
    .filter((p) => !p.bot)
    .map(
      (p) =>
        `<li>${avatar(p.id)}<span><b>${escapeHtml(p.name)}</b>${p.you ? " (you)" : ""}<br><small>${
          escapeHtml(p.you ? ZONE : p.tz)
        }</small></span></li>`
    )
    .join("");
}

const SUGGESTIONS = {
  channel: [
    "/schedule sync with @ana tomorrow afternoon",
    "/schedule design review with @ana @ben 45m next tuesday",
    "/schedule help",
  ],
  im: ["1:1 with @dev friday at 10", "planning with @ana @ben next tuesday", "help"],
};

function renderChrome() {
  const channel = ui.state.channels.find((c) => c.id === ui.view);
  const calendars = ui.view === "calendars";
  $("conversation").hidden = calendars;
  $("calendars").hidden = !calendars;
  if (calendars) {
    $("title").textContent = "Calendars";
    $("subtitle").textContent = "each person's week in their own zone";
    return;
  }
  $("title").textContent = channel.kind === "im" ? "Slotbot" : "# " + channel.name;
  $("subtitle").textContent = channel.kind === "im"
    ? "Direct message · asks in plain words"
    : "Everyone · /schedule answers only you";
  $("input").placeholder = channel.kind === "im" ? "Message Slotbot" : "Message #" + channel.name;
  $("suggestions").innerHTML = SUGGESTIONS[channel.kind === "im" ? "im" : "channel"]
    .map((s) => `<button type="button" class="suggestion">${escapeHtml(s)}</button>`)
    .join("");
}

function render() {
  if (!ui.state) return;
  if (ui.view === null) ui.view = ui.state.channels[0].id;
  renderSidebar();
  renderChrome();
  if (ui.view === "calendars") return;
  renderMessages();
}

// --- calendars ---------------------------------------------------------------------------

const HOUR_PX = 28;

function hhmm(minutes) {
  const h = Math.floor(minutes / 60) % 24;
  return `${String(h).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
}

function offsetLabel(zone, isoDay) {
  try {
    const text = new Date(isoDay + "T12:00:00Z").toLocaleString("en-US", {
      timeZone: zone,
      timeZoneName: "shortOffset",
    });
    return text.split(" ").pop().replace("GMT", "UTC");
  } catch (error) {
    return "";
  }
}

function personGrid(p, days) {
  const pieces = p.events.flatMap((e) => e.pieces.map((piece) => ({ ...piece, event: e })));
  let first = 8 * 60;
  let last = 19 * 60;
  for (const piece of pieces) {
    first = Math.min(first, Math.floor(piece.from / 60) * 60);
    last = Math.max(last, Math.ceil(piece.to / 60) * 60);
  }
  const height = ((last - first) / 60) * HOUR_PX;
  const y = (minutes) => ((minutes - first) / 60) * HOUR_PX;
  const hours = [];
  for (let m = first; m < last; m += 60) {
    hours.push(`<div class="cal-hour" style="top:${y(m)}px">${hhmm(m)}</div>`);
  }
  const columns = days.map((day, index) => {
    const date = new Date(day + "T12:00:00Z");
    const name = date.toLocaleDateString("en-US", { weekday: "short", timeZone: "UTC" });
    const working = (p.working[index] || [])
      .map(([a, b]) => `<div class="cal-working" style="top:${y(a)}px;height:${y(b) - y(a)}px"></div>`)
      .join("");
    const events = pieces
      .filter((piece) => piece.day === index)
      .map((piece) => {
        const e = piece.event;
        const tall = y(piece.to) - y(piece.from);
        const others = e.with.filter((n) => n && n !== p.name).join(", ");
        return `<div class="cal-event ${e.kind}" style="top:${y(piece.from)}px;height:${Math.max(
          tall - 2,
          10
        )}px" title="${escapeHtml(`${e.title} ${hhmm(piece.from)}–${hhmm(piece.to)}`)}"><b>${escapeHtml(
          e.title
        )}</b> <span>${hhmm(piece.from)}–${hhmm(piece.to)}</span>${
          others && tall > 30 ? `<br><span>with ${escapeHtml(others)}</span>` : ""
        }</div>`;
      })
      .join("");
    const today = day === localDay(new Date()) ? " today" : "";
    return `<div class="cal-day"><div class="cal-day-name${today}">${name} ${date.getUTCDate()}</div><div class="cal-day-body" style="height:${height}px">${working}${events}</div></div>`;
  });
  const place = p.place ? `${escapeHtml(p.place)} · ` : "";
  return `<div class="cal-person" data-user="${escapeHtml(p.id)}">
    <div class="cal-person-head">${avatar(p.id)}<div><b>${escapeHtml(p.name)}</b>${
      p.you ? " (you)" : ""
    }<div class="cal-zone">${place}${escapeHtml(p.tz)} (${offsetLabel(p.tz, days[0])})</div></div></div>
    <div class="cal-grid"><div class="cal-hours"><div class="cal-day-name">&nbsp;</div><div class="cal-day-body" style="height:${height}px">${hours.join(
      ""
    )}</div></div>${columns.join("")}</div>
  </div>`;
}

async function loadCalendars() {
  const query = ui.week ? `?week=${ui.week}` : "";
  const response = await fetch("/api/calendars" + query);
  if (!response.ok) return;
  const data = await response.json();
  ui.week = data.week;
  const first = new Date(data.days[0] + "T12:00:00Z");
  const last = new Date(data.days[6] + "T12:00:00Z");
  const format = { month: "short", day: "numeric", timeZone: "UTC" };
  $("cal-week").textContent = `Week of ${first.toLocaleDateString("en-US", format)} – ${last.toLocaleDateString(
    "en-US",
    { ...format, year: "numeric" }
  )}`;
  $("cal-people").innerHTML = data.people.map((p) => personGrid(p, data.days)).join("");
}

function moveWeek(days) {
  const base = new Date((ui.week || new Date().toISOString().slice(0, 10)) + "T12:00:00Z");
  ui.week = new Date(base.getTime() + days * 86400000).toISOString().slice(0, 10);
  loadCalendars();
}

// --- talking to the server ---------------------------------------------------------------

async function poll() {
  try {
    const since = ui.state ? ui.version : -1;
    const response = await fetch(`/api/state?since=${since}&tz=${encodeURIComponent(ZONE)}`);
    if (!response.ok) return;
    const data = await response.json();
    if (data.unchanged) return;
    ui.state = data;
    ui.version = data.version;
    render();
    if (ui.view === "calendars") await loadCalendars();
  } catch (error) {
    // The server may be restarting; the next poll tries again.
  }
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.ok ? response.json() : { ok: false, error: `HTTP ${response.status}` };
}

async function send(text) {
  if (!text.trim() || ui.view === "calendars") return;
  $("composer-error").textContent = "";
  ui.pending = true;
  try {
    const answer = await post("/api/send", { channel: ui.view, text });
    if (!answer.ok && answer.error && answer.error !== "unknown_command") {
      $("composer-error").textContent = `Not delivered: ${answer.error}`;
    }
  } finally {
    await poll();
    ui.pending = false;
  }
}

async function click(button) {
  if (button.dataset.url) window.open(button.dataset.url, "_blank", "noopener");
  const message = button.closest(".message");
  message.querySelectorAll(".bk-button").forEach((b) => (b.disabled = true));
  button.classList.add("clicked");
  await post("/api/click", {
    channel: button.dataset.channel,
    ts: button.dataset.ts,
    action_id: button.dataset.actionId,
    value: button.dataset.value,
  });
  await poll();
}

async function toggleFile(fileId) {
  if (ui.openFiles.has(fileId)) {
    ui.openFiles.delete(fileId);
  } else {
    ui.openFiles.add(fileId);
    if (!ui.fileText.has(fileId)) {
      renderMessages();
      const response = await fetch(ui.state.files[fileId].url);
      ui.fileText.set(fileId, response.ok ? await response.text() : `HTTP ${response.status}`);
    }
  }
  renderMessages();
}

function setView(view) {
  ui.view = view;
  render();
  if (view === "calendars") loadCalendars();
  else $("input").focus();
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  if (target.classList.contains("bk-button")) click(target);
  else if (target.classList.contains("file-open")) toggleFile(target.dataset.fileId);
  else if (target.classList.contains("suggestion")) {
    $("input").value = target.textContent;
    $("input").focus();
  } else if (target.dataset.channel && target.classList.contains("nav-item")) {
    setView(target.dataset.channel);
  }
});

$("nav-calendars").addEventListener("click", () => setView("calendars"));
$("cal-prev").addEventListener("click", () => moveWeek(-7));
$("cal-next").addEventListener("click", () => moveWeek(7));
$("cal-today").addEventListener("click", () => {
  ui.week = null;
  loadCalendars();
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("input").value;
  $("input").value = "";
  send(text);
});

$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

poll();
setInterval(poll, POLL_MS);
