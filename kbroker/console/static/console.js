// kbroker console: vanilla JS, no build step. Hash routes: #/brokers, #/topics, #/topics/NAME,
// #/groups, #/groups/NAME, #/throughput. Every value from the cluster goes into the page as text
// (textContent), never as HTML: topic names, keys and values are anyone's bytes.
"use strict";

const view = document.getElementById("view");
let timer = null; // the throughput view's poll, stopped on leaving it
let generation = 0; // a route change makes the answers of the previous one stale
let flash = null; // what the last action did, shown atop the next rendering of the view

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON: said below */ }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`);
  }
  return data;
}

function errorBox(error) {
  return el("p", {class: "error", "data-testid": "error"}, error.message);
}

function table(testid, headings, rows) {
  return el("table", {"data-testid": testid},
    el("thead", {}, el("tr", {}, headings.map(h => el("th", {class: h.num ? "num" : null}, h.label || h)))),
    el("tbody", {}, rows));
}

function cell(value, num) {
  return el("td", {class: num ? "num" : null}, value === null || value === undefined ? "–" : value);
}

const enc = s => encodeURIComponent(s);

// -- brokers -------------------------------------------------------------------------------------
async function showBrokers() {
  const cluster = await api("/api/cluster");
  return [
    el("h1", {}, "Brokers"),
    el("p", {}, "Cluster id ", el("span", {class: "badge", "data-testid": "cluster-id"}, cluster.cluster_id || "–"),
      " · controller ", el("span", {class: "badge", "data-testid": "controller"}, cluster.controller_id)),
    table("brokers", ["Id", "Host", "Port", "Role"], cluster.brokers.map(b => el("tr", {"data-broker": b.id},
      cell(b.id), cell(b.host), cell(b.port), cell(b.id === cluster.controller_id ? "controller" : "")))),
  ];
}

// -- topics --------------------------------------------------------------------------------------
async function showTopics() {
  const topics = await api("/api/topics");
  return [
    el("h1", {}, "Topics"),
    table("topics", ["Topic", {label: "Partitions", num: true}, {label: "Replication", num: true},
                     {label: "Under-replicated", num: true}],
      topics.map(t => el("tr", {"data-topic": t.name},
        el("td", {}, el("a", {href: `#/topics/${enc(t.name)}`}, t.name), t.internal ? " (internal)" : ""),
        el("td", {class: "num", "data-col": "partitions"}, t.partitions),
        cell(t.replication_factor, true), cell(t.under_replicated, true)))),
  ];
}

async function showTopic(name) {
  let topic;
  try {
    topic = await api(`/api/topics/${enc(name)}`);
  } catch (error) {
    if (error.status === 404) {
      return [el("h1", {}, "Topic ", name),
              el("p", {class: "error", "data-testid": "not-found"}, `Topic "${name}" does not exist.`)];
    }
    throw error;
  }
  const withSize = topic.partitions.some(p => p.size !== undefined);
  const headings = ["Partition", "Leader", "Replicas", "ISR", {label: "Start offset", num: true},
                    {label: "End offset", num: true}];
  if (withSize) headings.push({label: "Size (bytes)", num: true});
  const partitions = topic.partitions.map(p => el("tr", {"data-partition": p.partition},
    cell(p.partition), cell(p.leader), cell(p.replicas.join(", ")), cell(p.isr.join(", ")),
    el("td", {class: "num", "data-col": "start"}, p.start_offset ?? "–"),
    el("td", {class: "num", "data-col": "end"}, p.end_offset ?? "–"),
    withSize ? cell(p.size, true) : null));
  return [
    el("h1", {"data-testid": "topic-name"}, "Topic ", name),
    el("h2", {}, "Partitions"),
    table("partitions", headings, partitions),
    messageBrowser(name, topic.partitions),
    producePanel(name, topic.partitions),
    el("h2", {}, "Configs"),
    table("configs", ["Name", "Value", "Source"], topic.configs.map(c => el("tr", {"data-config": c.name},
      cell(c.name), cell(c.value === null ? "(sensitive)" : c.value),
      cell(c.default ? "default" : String(c.source).replace(/^ConfigSource\./, "")))))
  ];
}

// -- message browser -----------------------------------------------------------------------------
function decodeBase64(text) {
  if (text === null || text === undefined) return null;
  return Uint8Array.from(atob(text), c => c.charCodeAt(0));
}

function render(bytes, format) {
  if (bytes === null) return "null";
  if (format === "hex") return Array.from(bytes, b => b.toString(16).padStart(2, "0")).join(" ");
  const text = new TextDecoder("utf-8").decode(bytes);
  if (format === "json") {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return text; }
  }
  return text;
}

function messageBrowser(name, partitions) {
  const result = el("div", {"data-testid": "messages"});
  const form = el("form", {"data-testid": "browse-form"},
    el("label", {}, "Partition", el("select", {name: "partition"},
      partitions.map(p => el("option", {value: p.partition}, p.partition)))),
    el("label", {}, "From", el("select", {name: "from"},
      el("option", {value: "last"}, "the last records"), el("option", {value: "offset"}, "offset"),
      el("option", {value: "timestamp"}, "timestamp (ms or ISO date)"))),
    el("label", {}, "Offset / time", el("input", {name: "position", size: 16})),
    el("label", {}, "Window", el("input", {name: "limit", type: "number", value: 50, min: 1, max: 500})),
    el("label", {}, "Search", el("input", {name: "search", placeholder: "text in key, value or header"})),
    el("label", {}, "Show as", el("select", {name: "format"},
      el("option", {value: "text"}, "text"), el("option", {value: "json"}, "JSON"),
      el("option", {value: "hex"}, "hex"))),
    el("button", {type: "submit"}, "Show"));
  let last = null;
  const draw = () => {
    if (last === null) return;
    const format = form.elements.format.value;
    result.replaceChildren(
      el("p", {class: "note", "data-testid": "window"},
        `${last.messages.length} record(s) from offset ${last.from_offset} ` +
        `(partition ${last.partition}: offsets ${last.start_offset}–${last.end_offset})`),
      table("message-table", ["Offset", "Timestamp", "Key", "Value", "Headers"], last.messages.map(m =>
        el("tr", {"data-offset": m.offset},
          cell(m.offset), cell(m.timestamp > 0 ? new Date(m.timestamp).toISOString() : m.timestamp),
          el("td", {"data-col": "key"}, el("pre", {}, render(decodeBase64(m.key), format))),
          el("td", {"data-col": "value"}, el("pre", {}, render(decodeBase64(m.value), format))),
          el("td", {"data-col": "headers"}, el("pre", {}, m.headers.map(([k, v]) =>
            `${k}: ${render(decodeBase64(v), format)}`).join("\n")))))));
  };
  form.elements.format.addEventListener("change", draw);
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const f = form.elements;
    const query = new URLSearchParams({partition: f.partition.value, limit: f.limit.value || "50"});
    const position = f.position.value.trim();
    if (f.from.value === "offset" && position) query.set("offset", position);
    if (f.from.value === "timestamp" && position) {
      const ms = /^\d+$/.test(position) ? Number(position) : Date.parse(position);
      if (Number.isNaN(ms)) { result.replaceChildren(errorBox(new Error(`not a time: ${position}`))); return; }
      query.set("timestamp", String(ms));
    }
    if (f.search.value) query.set("search", f.search.value);
    result.replaceChildren(el("p", {class: "note"}, "Reading…"));
    try {
      last = await api(`/api/topics/${enc(name)}/messages?${query}`);
      draw();
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  });
  return el("section", {}, el("h2", {}, "Messages"), form, result);
}

// -- produce -------------------------------------------------------------------------------------
function producePanel(name, partitions) {
  const status = el("p", {"data-testid": "produce-status"});
  const form = el("form", {"data-testid": "produce-form"},
    el("label", {}, "Partition", el("select", {name: "partition"}, el("option", {value: ""}, "by key"),
      partitions.map(p => el("option", {value: p.partition}, p.partition)))),
    el("label", {}, "Key", el("input", {name: "key"})),
    el("label", {}, "Value", el("textarea", {name: "value"})),
    el("label", {}, "Headers (one name=value a line)", el("textarea", {name: "headers"})),
    el("button", {type: "submit"}, "Produce"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const f = form.elements;
    const headers = {};
    for (const line of f.headers.value.split("\n")) {
      if (!line.trim()) continue;
      const at = line.indexOf("=");
      if (at < 1) { status.replaceChildren(errorBox(new Error(`header ${line}: expected name=value`))); return; }
      headers[line.slice(0, at).trim()] = line.slice(at + 1);
    }
    try {
      const answer = await api(`/api/topics/${enc(name)}/messages`, {
        key: f.key.value === "" ? null : f.key.value, value: f.value.value, headers,
        partition: f.partition.value === "" ? null : Number(f.partition.value)});
      status.replaceChildren(el("span", {class: "ok"},
        `Produced to partition ${answer.partition} at offset ${answer.offset}.`));
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return el("section", {}, el("h2", {}, "Produce a test message"), form, status);
}

// -- consumer groups -----------------------------------------------------------------------------
async function showGroups() {
  const groups = await api("/api/groups");
  return [
    el("h1", {}, "Consumer groups"),
    groups.length === 0 ? el("p", {class: "note"}, "No consumer groups.") :
      table("groups", ["Group", "State"], groups.map(g => el("tr", {"data-group": g.group},
        el("td", {}, el("a", {href: `#/groups/${enc(g.group)}`}, g.group)), cell(g.state)))),
  ];
}

async function showGroup(id) {
  let group;
  try {
    group = await api(`/api/groups/${enc(id)}`);
  } catch (error) {
    if (error.status === 404) {
      return [el("h1", {}, "Consumer group ", id),
              el("p", {class: "error", "data-testid": "not-found"}, `Consumer group "${id}" does not exist.`)];
    }
    throw error;
  }
  const totalLag = group.offsets.reduce((sum, o) => sum + (o.lag || 0), 0);
  return [
    el("h1", {"data-testid": "group-name"}, "Consumer group ", id),
    el("p", {}, "State ", el("span", {class: "badge", "data-testid": "group-state"}, group.state),
      group.protocol ? [" · assignor ", el("span", {class: "badge"}, group.protocol)] : null,
      " · total lag ", el("span", {class: "badge", "data-testid": "total-lag"}, totalLag)),
    el("h2", {}, "Members"),
    group.members.length === 0 ? el("p", {class: "note", "data-testid": "no-members"}, "No active members.") :
      table("members", ["Member", "Client id", "Host", "Assignment"], group.members.map(m =>
        el("tr", {}, cell(m.member_id), cell(m.client_id), cell(m.host), cell(m.assignment.join(", "))))),
    el("h2", {}, "Offsets and lag"),
    table("group-offsets", ["Topic", "Partition", {label: "Committed", num: true}, {label: "End offset", num: true},
                            {label: "Lag", num: true}, "Owner"],
      group.offsets.map(o => el("tr", {"data-tp": `${o.topic}-${o.partition}`},
        cell(o.topic), cell(o.partition), el("td", {class: "num", "data-col": "committed"}, o.committed ?? "–"),
        cell(o.end_offset, true), el("td", {class: "num", "data-col": "lag"}, o.lag ?? "–"), cell(o.owner)))),
    resetPanel(id, group),
  ];
}

function resetPanel(id, group) {
  const section = el("section", {}, el("h2", {}, "Reset offsets"));
  if (group.members.length > 0) {
    section.append(el("p", {class: "note", "data-testid": "reset-unavailable"},
      `Offsets can be reset only while the group is empty: it has ${group.members.length} active ` +
      "member(s). Stop its consumers first."));
    return section;
  }
  const topics = [...new Set(group.offsets.map(o => o.topic))];
  const status = el("p", {"data-testid": "reset-status"});
  const form = el("form", {"data-testid": "reset-form"},
    el("label", {}, "Topic", topics.length ? el("select", {name: "topic"}, topics.map(t => el("option", {value: t}, t)))
                                           : el("input", {name: "topic"})),
    el("label", {}, "To", el("select", {name: "to"}, el("option", {value: "earliest"}, "earliest"),
      el("option", {value: "latest"}, "latest"), el("option", {value: "offset"}, "offset"))),
    el("label", {}, "Offset", el("input", {name: "offset", type: "number", min: 0})),
    el("button", {type: "submit"}, "Reset"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const f = form.elements;
    try {
      await api(`/api/groups/${enc(id)}/reset`, {topic: f.topic.value, to: f.to.value,
        offset: f.offset.value === "" ? null : Number(f.offset.value)});
      flash = `Offsets of ${f.topic.value} reset to ${f.to.value === "offset" ? f.offset.value : f.to.value}.`;
      await route(); // the table shows the new committed offsets
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  section.append(form, status);
  return section;
}

// -- throughput ----------------------------------------------------------------------------------
async function showThroughput() {
  const body = el("div", {"data-testid": "throughput"}, el("p", {class: "note"}, "Measuring…"));
  const mine = generation;
  const poll = async () => {
    if (mine !== generation) return;
    try {
      const answer = await api("/api/throughput");
      if (mine !== generation) return;
      const rows = Object.entries(answer.records_per_s).map(([topic, rate]) => el("tr", {"data-topic": topic},
        cell(topic), el("td", {class: "num", "data-col": "rate"}, rate.toFixed(1))));
      body.replaceChildren(
        el("p", {class: "note"}, `Records in the cluster: ${answer.total_records}. Updated `,
          new Date().toLocaleTimeString(), "."),
        table("throughput-table", ["Topic", {label: "Records/s", num: true}], rows));
    } catch (error) {
      body.replaceChildren(errorBox(error));
    }
  };
  await poll();
  timer = setInterval(poll, 2000);
  return [el("h1", {}, "Live throughput"), body];
}

// -- routing -------------------------------------------------------------------------------------
async function route() {
  if (timer !== null) { clearInterval(timer); timer = null; }
  const mine = ++generation;
  const parts = (location.hash.replace(/^#\/?/, "") || "brokers").split("/");
  const [section, rest] = [parts[0], parts.slice(1).join("/")];
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.nav === section);
  }
  view.setAttribute("data-state", "loading");
  let content;
  try {
    const name = rest ? decodeURIComponent(rest) : "";
    if (section === "topics") content = name ? await showTopic(name) : await showTopics();
    else if (section === "groups") content = name ? await showGroup(name) : await showGroups();
    else if (section === "throughput") content = await showThroughput();
    else content = await showBrokers();
  } catch (error) {
    content = [errorBox(error)];
  }
  if (mine !== generation) return; // the user went elsewhere meanwhile
  if (flash !== null) {
    content.unshift(el("p", {class: "ok", "data-testid": "flash"}, flash));
    flash = null;
  }
  view.replaceChildren(...content);
  view.setAttribute("data-state", "ready");
}

window.addEventListener("hashchange", route);
route();
