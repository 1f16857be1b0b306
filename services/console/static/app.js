/* livedesk console: the page's behaviour, served as it is (no build step, nothing from another origin).

   It reads the incidents and feeds from the API, shows each incident with its key facts and a timeline of its
   changes, and follows /events (Server-Sent Events) so that a change appears the moment the tracker commits it.
   Elements carry stable attributes for tools and tests: data-incident-id on an incident, data-event-key (incident
   id and version) and data-event-type on a timeline entry, data-event-id on one that came live, data-feed-id on a
   feed. Text from the feeds is only ever set as text, and only http(s) links are made clickable. */
"use strict";

const TOKEN_KEY = "livedesk.console.token";
const INCIDENTS_SHOWN = 100;
const FEEDS_REFRESH_MS = 30_000;
const DETAIL_REFRESH_MS = 300; // a burst of events about one incident costs one read of it

const ui = {
  status: document.getElementById("status"),
  forget: document.getElementById("forget-token"),
  tokenForm: document.getElementById("token-form"),
  tokenInput: document.getElementById("token"),
  feeds: document.getElementById("feeds"),
  incidents: document.getElementById("incidents"),
  empty: document.getElementById("no-incidents"),
  template: document.getElementById("incident-template"),
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  cards: new Map(), // incident id → its <article>
  events: null, // the EventSource
  refreshes: new Map(), // incident id → timer of a pending detail read
  feedsTimer: null,
};

class AuthRequired extends Error {}

// ---- the API ------------------------------------------------------------------------------------------------

async function api(path) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new AuthRequired();
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || `${path}: HTTP ${response.status}`);
  }
  return response.json();
}

// ---- small DOM helpers --------------------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, {
  day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
});

function timeOf(iso) {
  return el("time", { datetime: iso, title: iso }, iso ? TIME_FORMAT.format(new Date(iso)) : "");
}

function webLink(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
}

function evidenceLink(label, url) {
  const href = webLink(url);
  return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, label) : el("span", {}, label);
}

const words = (value) => String(value).replaceAll("_", " ");

function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.status.textContent = text;
}

// ---- feeds ----------------------------------------------------------------------------------------------------

function feedHealth(feed) {
  if (feed.gone || feed.last_error) return "bad";
  if (!feed.last_polled_at || feed.error_count > 0 || feed.guid_unreliable) return "warn";
  return "ok";
}

function feedNote(feed) {
  if (feed.gone) return "gone";
  if (feed.last_error) return feed.last_status ? `error ${feed.last_status}` : "error";
  if (!feed.last_polled_at) return "not polled yet";
  const status = feed.last_status === "304" ? "not modified" : feed.last_status || "ok";
  return `${status} · ${TIME_FORMAT.format(new Date(feed.last_polled_at))}`;
}

function renderFeeds(feeds) {
  ui.feeds.replaceChildren();
  if (!feeds.length) {
    ui.feeds.append(el("li", { class: "muted" }, "No feeds registered."));
    return;
  }
  for (const feed of feeds) {
    const marks = [feed.hot ? "hot" : null, feed.pushed ? "push" : null].filter(Boolean).join(" · ");
    const title = [feed.url, feed.last_error, feed.guid_unreliable].filter(Boolean).join("\n");
    ui.feeds.append(el("li", { class: "feed", "data-feed-id": feed.id, "data-health": feedHealth(feed), title },
      el("b", {}, feed.name), el("small", {}, feedNote(feed)), marks ? el("small", {}, marks) : null));
  }
}

async function refreshFeeds() {
  try {
    renderFeeds((await api("/api/feeds")).feeds);
  } catch (error) {
    if (error instanceof AuthRequired) return askForToken();
    ui.feeds.replaceChildren(el("li", { class: "muted" }, `feeds unavailable: ${error.message}`));
  }
}

// ---- incidents --------------------------------------------------------------------------------------------------

function place(incident) {
  const where = incident.location;
  if (!where) return "place not reported";
  return [where.street, where.name, where.region].filter(Boolean).join(", ");
}

function casualty(person) {
  const parts = [person.condition !== "unknown" ? words(person.condition) : "condition unknown"];
  if (person.life_changing) parts.push("life-changing injuries");
  const role = person.role !== "unknown" ? ` (${person.role})` : "";
  return `${person.label}${role}: ${parts.join(", ")}`;
}

function facts(incident) {
  const rows = [];
  for (const person of incident.casualties || []) rows.push(["condition", casualty(person)]);
  if (incident.dead !== null && incident.dead !== undefined) rows.push(["dead", String(incident.dead)]);
  if (incident.injured !== null && incident.injured !== undefined) rows.push(["injured", String(incident.injured)]);
  for (const inquiry of incident.investigations || []) {
    rows.push(["investigation", `${words(inquiry.body)} ${words(inquiry.kind)} — ${inquiry.status}`]);
  }
  if (incident.cordon) rows.push(["cordon", words(incident.cordon)]);
  if (incident.public_risk) rows.push(["public risk", words(incident.public_risk)]);
  if (incident.arrests !== null && incident.arrests !== undefined) rows.push(["arrests", String(incident.arrests)]);
  if (incident.charges !== null && incident.charges !== undefined) rows.push(["charges", String(incident.charges)]);
  rows.push(["sources", (incident.sources || []).join(", ") || "—"]);
  return rows;
}

function newCard(incidentId) {
  const card = ui.template.content.firstElementChild.cloneNode(true);
  card.dataset.incidentId = incidentId;
  state.cards.set(incidentId, card);
  ui.empty.hidden = true;
  return card;
}

function renderIncident(incident) {
  const card = state.cards.get(incident.incident_id) || newCard(incident.incident_id);
  card.dataset.category = incident.category;
  card.dataset.updatedAt = incident.updated_at;
  card.dataset.version = String(incident.version);
  card.querySelector(".category").textContent = words(incident.category);
  card.querySelector(".title").textContent = incident.title;
  card.querySelector(".place").replaceChildren(place(incident), " · updated ", timeOf(incident.updated_at));
  const list = card.querySelector(".facts");
  list.replaceChildren();
  for (const [name, value] of facts(incident)) {
    list.append(el("dt", {}, name), el("dd", { "data-fact": name }, value));
  }
  placeCard(card);
  return card;
}

// Most recently active first, as the API lists them.
function placeCard(card) {
  const newer = [...ui.incidents.children].find(
    (other) => other !== card && other.dataset.updatedAt < card.dataset.updatedAt);
  if (newer) {
    if (card.nextElementSibling !== newer) ui.incidents.insertBefore(card, newer);
  } else if (card.parentElement !== ui.incidents || card.nextElementSibling) {
    ui.incidents.append(card);
  }
}

function removeCard(incidentId) {
  state.cards.get(incidentId)?.remove();
  state.cards.delete(incidentId);
  ui.empty.hidden = state.cards.size > 0;
}

// ---- timelines ----------------------------------------------------------------------------------------------------

// One entry per change: its incident's id and version after it, so that an event told live and the same change
// read from the history are one entry.
function timelineEntry(card, key, seenAt, build) {
  const timeline = card.querySelector(".timeline");
  const known = timeline.querySelector(`[data-event-key="${CSS.escape(key)}"]`);
  if (known) return known;
  const entry = build();
  entry.dataset.eventKey = key;
  entry.dataset.sort = `${seenAt}|${key.split(":").pop().padStart(8, "0")}`;
  // Newest first.
  const older = [...timeline.children].find((other) => other.dataset.sort < entry.dataset.sort);
  timeline.insertBefore(entry, older || null);
  return entry;
}

function renderHistory(card, detail) {
  const links = new Map(detail.evidence.map((item) => [`${item.source_id} ${item.guid}`, item.url]));
  for (const revision of detail.history) {
    const { source_id: source, guid } = revision.decision;
    const url = links.get(`${source} ${guid}`);
    revision.events.forEach((summary, index) => {
      const version = revision.version - revision.events.length + index + 1;
      timelineEntry(card, `${revision.incident_id}:${version}`, revision.believed_at, () => el("li", {},
        timeOf(revision.believed_at), el("span", { class: "summary" }, summary),
        el("span", { class: "evidence" }, evidenceLink(source, url))));
    });
  }
}

function eventEvidence(event) {
  return el("span", { class: "evidence" },
    ...event.evidence.map((item) => evidenceLink(item.title || item.source_id, item.url)));
}

function renderEvent(card, event) {
  const entry = timelineEntry(card, `${event.incident_id}:${event.version}`, event.detected_at, () => el("li",
    { class: "live" }, timeOf(event.detected_at), el("span", { class: "summary" }, event.summary),
    eventEvidence(event)));
  if (!entry.dataset.eventId) {
    // Read from the history a moment before the event itself came: the event tells more (its type, its evidence).
    entry.dataset.eventId = event.event_id;
    entry.dataset.eventType = event.type;
    entry.querySelector(".evidence").replaceWith(eventEvidence(event));
  }
  return entry;
}

async function loadIncident(incidentId) {
  const detail = await api(`/api/incidents/${encodeURIComponent(incidentId)}`);
  const card = renderIncident(detail.incident);
  renderHistory(card, detail);
  return card;
}

function refreshIncidentSoon(incidentId) {
  clearTimeout(state.refreshes.get(incidentId));
  state.refreshes.set(incidentId, setTimeout(() => {
    state.refreshes.delete(incidentId);
    loadIncident(incidentId).catch(handleFailure);
  }, DETAIL_REFRESH_MS));
}

// ---- live changes -------------------------------------------------------------------------------------------------

function onChange(message) {
  let event;
  try {
    event = JSON.parse(message.data);
  } catch {
    return; // not an event this page knows how to read
  }
  if (event.type === "incidents_merged" && event.subject) removeCard(event.subject);
  let card = state.cards.get(event.incident_id);
  if (!card && event.type === "incident_opened" && event.after) card = renderIncident(event.after);
  if (!card) {
    refreshIncidentSoon(event.incident_id); // an incident not on the page yet: read it whole
    return;
  }
  renderEvent(card, event);
  card.classList.remove("changed");
  void card.offsetWidth; // restart the highlight for a second change in a row
  card.classList.add("changed");
  refreshIncidentSoon(event.incident_id); // the facts as the tracker now holds them
}

function follow(lastEventId) {
  state.events?.close();
  const query = new URLSearchParams();
  if (lastEventId) query.set("last_event_id", lastEventId);
  // EventSource cannot send headers: the token goes as a query parameter.
  if (state.token) query.set("access_token", state.token);
  const search = query.toString();
  const source = new EventSource(search ? `/events?${search}` : "/events");
  source.onopen = () => setStatus("live", "live");
  source.onmessage = onChange;
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (a token no longer valid, the console stopped): start over, which asks for a token if needed.
      setStatus("down", "disconnected");
      setTimeout(() => start().catch(handleFailure), 5000);
    } else {
      setStatus("connecting", "reconnecting…"); // the browser retries by itself, from the last event it got
    }
  };
  state.events = source;
}

// ---- the token ----------------------------------------------------------------------------------------------------

function askForToken() {
  state.events?.close();
  state.events = null;
  setStatus("down", "token required");
  ui.tokenForm.hidden = false;
  ui.forget.hidden = true;
  ui.tokenInput.focus();
}

ui.tokenForm.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  state.token = ui.tokenInput.value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  ui.tokenInput.value = "";
  ui.tokenForm.hidden = true;
  start().catch(handleFailure);
});

ui.forget.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  askForToken();
});

// ---- start --------------------------------------------------------------------------------------------------------

function handleFailure(error) {
  if (error instanceof AuthRequired) return askForToken();
  console.error(error);
  setStatus("down", error.message);
}

async function start() {
  setStatus("connecting", "connecting…");
  const listed = await api(`/api/incidents?limit=${INCIDENTS_SHOWN}`);
  ui.tokenForm.hidden = true;
  ui.forget.hidden = !state.token;
  await Promise.all(listed.incidents.map((incident) => loadIncident(incident.incident_id)));
  ui.empty.hidden = state.cards.size > 0;
  // From the newest event when the list was read: nothing between the list and the stream is missed.
  follow(listed.last_event_id);
  clearInterval(state.feedsTimer);
  await refreshFeeds();
  state.feedsTimer = setInterval(refreshFeeds, FEEDS_REFRESH_MS);
}

start().catch(handleFailure);
