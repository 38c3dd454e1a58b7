/* llm-sched web view: lists the runs and draws one from its events, as the server streams them.
 *
 * Everything shown is computed here from the events (the server only relays the event log). Text
 * that comes from a run (job names, agent ids, model output) only ever becomes text nodes or
 * attribute values (textContent, setAttribute), never markup; the page's Content-Security-Policy
 * forbids inline script besides.
 */
(() => {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  // Job colours: distinct on the dark background, with dark text readable on each.
  const PALETTE = ["#58a6ff", "#3fb9a0", "#d2a8ff", "#f0883e", "#e3b341", "#7ee787",
                   "#ff9bce", "#79c0ff", "#ffa657", "#bc8cff", "#56d4dd", "#c9d1d9"];
  const FEED_MAX = 80;
  const RUNS_REFRESH_MS = 5000;
  const COMPACT_NODES = 120;  // above this many nodes, cells lose their names (the tooltip keeps them)

  const $ = (id) => document.getElementById(id);

  // -- DOM helpers: elements and text nodes only, never markup parsed from strings -------------------
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    setProps(node, props || {});
    append(node, children);
    return node;
  }

  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    append(node, children);
    return node;
  }

  function setProps(node, props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "title") node.title = String(value);
      else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
      else if (key === "style") Object.assign(node.style, value);  // CSSOM: allowed by the CSP
      else node.setAttribute(key, String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
  }

  function setText(id, value) { $(id).textContent = value; }

  // -- formatting ------------------------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, "0");

  function fmtSim(t) {
    if (t === null || t === undefined || !Number.isFinite(t)) return "—";
    const whole = Math.round(Math.abs(t));
    const text = `${Math.floor(whole / 3600)}:${pad(Math.floor((whole % 3600) / 60))}:${pad(whole % 60)}`;
    return t < 0 ? `-${text}` : text;
  }

  function fmtTick(t) {
    const whole = Math.round(t);
    const hours = Math.floor(whole / 3600), minutes = Math.floor((whole % 3600) / 60);
    return minutes === 0 ? `${hours}h` : `${hours}:${pad(minutes)}`;
  }

  function fmtWhen(epoch) {
    if (!epoch) return "";
    return new Date(epoch * 1000).toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  const fmt2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : "—");
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  function shorten(text, max) {
    const str = String(text ?? "");
    return str.length > max ? `${str.slice(0, max - 1)}…` : str;
  }

  const byName = (a, b) => String(a).localeCompare(String(b), undefined, { numeric: true });

  function nodeList(nodes, max = 6) {
    const all = nodes || [];
    return all.length <= max ? all.join(", ") : `${all.slice(0, max).join(", ")} … (${all.length} nodes)`;
  }

  // -- the run's state, built event by event -----------------------------------------------------------
  function freshState() {
    return {
      started: null,       // the scenario_started event
      ended: false,
      events: 0,
      llmCalls: 0,
      now: null,           // the latest simulated time seen
      phase: null,
      jobs: new Map(),     // job id -> job record (see onJobSubmitted)
      decisions: [],
      tallies: new Map(),  // job id -> its latest tally
      rounds: 0,
      candidates: new Map(),  // "job#round" -> candidate event
      votes: new Map(),       // "job#round" -> Map(agent -> vote record)
      current: null,          // {job, round}: the latest round that had a candidate or a vote
      reputation: new Map(),  // agent -> {value, reason, excluded, readmitted, health}
      faults: new Map(),      // agent -> active injected behaviour
      nodes: new Map(),       // node -> {pool, down, reason}
      occupancy: null,        // the latest occupancy event
      blocked: 0,
      refused: 0,
      feed: [],
      problems: [],
    };
  }

  let state = freshState();
  let runId = null;
  let status = "none";
  let source = null;
  let runs = [];

  const roundKey = (job, round) => `${job}#${round}`;

  function seeTime(t) {
    if (Number.isFinite(t) && (state.now === null || t > state.now)) state.now = t;
  }

  function feed(ev, tag, cls, text) {
    state.feed.push({ seq: ev.seq, tag, cls, text });
    if (state.feed.length > FEED_MAX) state.feed.shift();
  }

  function agentRep(agent) {
    if (!state.reputation.has(agent)) {
      state.reputation.set(agent, { value: null, reason: "", excluded: false, readmitted: false, health: null });
    }
    return state.reputation.get(agent);
  }

  function seeNode(name, pool) {
    const node = state.nodes.get(name) || { pool: null, down: false, reason: "" };
    if (pool && !node.pool) node.pool = pool;
    state.nodes.set(name, node);
    return node;
  }

  const HANDLERS = {
    scenario_started(ev) {
      state.started = ev;
      for (const agent of Object.keys(ev.agents || {})) agentRep(agent);
    },
    phase_started(ev) {
      state.phase = ev.phase;
      feed(ev, "phase", "info", ev.description ? `${ev.phase}: ${ev.description}` : ev.phase);
    },
    fault_changed(ev) {
      if (ev.active) state.faults.set(ev.agent, ev.behaviour);
      else state.faults.delete(ev.agent);
      feed(ev, ev.active ? "fault on" : "fault off", "warn", `${ev.agent}: ${ev.behaviour}`);
    },
    job_submitted(ev) {
      const job = ev.job || {};
      state.jobs.set(job.id, {
        id: job.id, name: job.name || "", kind: job.kind || "", nodes: job.nodes, runtime: job.runtime_s,
        submit: ev.sim_time, retryOf: ev.retry_of || null, index: state.jobs.size,
        outcome: null, reason: "", placement: null, start: null, started: false, finish: null,
        state: "waiting", ranOn: null, executor: null,
      });
      seeTime(ev.sim_time);
      if (ev.retry_of) feed(ev, "retry", "warn", `${job.id} places ${ev.retry_of} again`);
    },
    candidate(ev) {
      state.candidates.set(roundKey(ev.job_id, ev.round), ev);
      state.current = { job: ev.job_id, round: ev.round };
    },
    vote(ev) {
      const key = roundKey(ev.job_id, ev.round);
      if (!state.votes.has(key)) state.votes.set(key, new Map());
      const vote = ev.vote;
      state.votes.get(key).set(ev.agent, {
        choice: ev.counted === false ? "refused" : vote === null || vote === undefined ? "silent"
          : vote.accept ? "accept" : "reject",
        confidence: vote ? vote.confidence : null,
        reasoning: vote ? vote.reasoning : "",
      });
      state.current = { job: ev.job_id, round: ev.round };
    },
    vote_refused(ev) {
      state.refused += 1;
      feed(ev, "vote refused", "bad", `${ev.sender} (as ${ev.claimed}) on ${ev.job_id}: ${ev.reason}`);
    },
    tally(ev) {
      state.tallies.set(ev.job_id, ev);
      state.rounds += 1;
    },
    proposal_blocked(ev) {
      state.blocked += 1;
      feed(ev, "blocked", "bad", `${ev.proposer} on ${ev.job_id}: ${(ev.reasons || []).join("; ")}`);
    },
    score_overclaimed(ev) {
      feed(ev, "overclaimed", "warn", `${ev.agent} on ${ev.job_id}: ${fmt2(ev.claimed)} > ${fmt2(ev.recomputed)}`);
    },
    reputation(ev) {
      const rep = agentRep(ev.agent);
      rep.value = ev.new;
      rep.reason = ev.reason;
      const cls = ev.new < ev.old ? "bad" : "good";
      feed(ev, "reputation", cls, `${ev.agent} ${fmt2(ev.old)} → ${fmt2(ev.new)}: ${ev.reason}`);
    },
    agent_excluded(ev) {
      const rep = agentRep(ev.agent);
      rep.excluded = true;
      rep.readmitted = false;
      rep.value = ev.reputation;
      feed(ev, "excluded", "bad", `${ev.agent} at ${fmt2(ev.reputation)} (job ${ev.job_id})`);
    },
    agent_readmitted(ev) {
      const rep = agentRep(ev.agent);
      rep.excluded = false;
      rep.readmitted = true;
      rep.value = ev.reputation;
      feed(ev, "readmitted", "good", `${ev.agent} at ${fmt2(ev.reputation)} (job ${ev.job_id})`);
    },
    decision(ev) {
      const d = ev.decision || {};
      const job = state.jobs.get(d.job_id);
      const placement = d.placement || null;
      state.decisions.push({ seq: ev.seq, decision: d, unanimous: ev.unanimous, tally: state.tallies.get(d.job_id) });
      if (job) {
        job.outcome = d.outcome;
        job.reason = d.reason || "";
        job.placement = placement;
        // Without a job_started event the job starts when it is committed, at its submit time.
        if (d.outcome === "commit" && job.start === null) job.start = job.submit;
        if (d.outcome === "commit") job.state = "running";
        if (d.outcome !== "commit") job.state = "rejected";
      }
      if (placement) for (const node of placement.nodes || []) seeNode(node, placement.pool);
    },
    occupancy(ev) {
      state.occupancy = ev;
      seeTime(ev.sim_time);
    },
    network_status(ev) {
      for (const agent of ev.agents || []) {
        const rep = agentRep(agent.agent);
        rep.value = agent.reputation;
        rep.health = agent.health;
        rep.excluded = agent.health === "excluded";
      }
    },
    job_started(ev) {
      const job = state.jobs.get(ev.job_id);
      if (job) {
        job.start = ev.sim_time;
        job.started = true;
        job.state = "running";
        job.ranOn = ev.nodes || null;
        job.executor = ev.executor;
      }
      const pool = job && job.placement ? job.placement.pool : null;
      for (const node of ev.nodes || []) seeNode(node, pool);
      seeTime(ev.sim_time);
    },
    job_finished(ev) {
      const job = state.jobs.get(ev.job_id);
      if (job) {
        job.finish = ev.sim_time;
        job.state = ev.state || "completed";
        if (ev.ran_on) job.ranOn = ev.ran_on;
        if (job.start === null) job.start = job.submit;
      }
      if (ev.state && ev.state !== "completed") {
        feed(ev, `job ${ev.state}`, "bad", `${ev.job_id} at ${fmtSim(ev.sim_time)}${ev.reason ? `: ${ev.reason}` : ""}`);
      }
      seeTime(ev.sim_time);
    },
    node_state(ev) {
      const node = seeNode(ev.node, null);
      node.down = ev.state === "down";
      node.reason = ev.reason || "";
      feed(ev, `node ${ev.state}`, ev.state === "down" ? "bad" : "good",
        `${ev.node}${ev.reason ? `: ${ev.reason}` : ""}`);
      seeTime(ev.sim_time);
    },
    scenario_ended(ev) {
      state.ended = true;
      feed(ev, "ended", "info", `${ev.scenario} in ${fmt2(ev.wall_s)} s (wall clock)`);
    },
    llm_call() {
      state.llmCalls += 1;
    },
  };

  function apply(ev) {
    if (!ev || typeof ev.kind !== "string") return;
    state.events += 1;
    const handler = Object.prototype.hasOwnProperty.call(HANDLERS, ev.kind) ? HANDLERS[ev.kind] : null;
    if (handler) handler(ev);
  }

  // -- rendering ------------------------------------------------------------------------------------
  let renderQueued = false;

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function render() {
    renderHeader();
    if (!runId) return;
    renderProblems();
    renderTiles();
    renderVotes();
    renderReputation();
    renderFeed();
    renderDecisions();
    renderNodes();
    renderGantt();
  }

  function jobColor(job) {
    return PALETTE[(job ? job.index : 0) % PALETTE.length];
  }

  function quorum() {
    return state.started ? state.started.quorum : null;
  }

  function renderHeader() {
    const started = state.started;
    setText("run-title", runId || "No run selected");
    const badge = $("badge");
    badge.className = `badge badge-${status}`;
    badge.textContent = status === "none" ? "—" : status;
    document.body.dataset.status = status;
    setText("h-scenario", started ? started.scenario : "—");
    setText("h-source", started ? started.provider : "—");
    const detail = started && started.source ? started.source.detail || "" : "";
    setText("h-source-detail", detail && detail !== (started && started.provider) ? detail : "");
    $("h-source-detail").title = detail;
    setText("h-nfq", started ? `${started.n} / ${started.f} / ${started.quorum}` : "—");
    const protocol = started ? [started.protocol, started.method, started.weighted ? "weighted" : null] : [];
    setText("h-protocol", protocol.filter(Boolean).join(" · ") || "—");
    // Runs from before executors have no such field: their jobs ran on the simulated clock.
    setText("h-executor", started ? (started.executor === "sim" || !started.executor ? "sim (simulated clock)"
                                     : started.executor) : "—");
    setText("h-seed", started ? String(started.seed) : "—");
    setText("h-phase", state.phase || "—");
  }

  function renderProblems() {
    const list = $("problems");
    list.hidden = state.problems.length === 0;
    list.replaceChildren(...state.problems.slice(-20).map((p) => h("li", { text: p })));
  }

  function renderTiles() {
    const jobs = [...state.jobs.values()];
    const count = (pred) => jobs.filter(pred).length;
    setText("stat-jobs", String(jobs.length));
    const broken = count((j) => j.state === "failed" || j.state === "lost");
    const jobsSub = [`${count((j) => j.state === "running")} running`, `${count((j) => j.state === "completed")} done`,
      broken ? `${broken} failed/lost` : null].filter(Boolean).join(" · ");
    setText("stat-jobs-sub", jobsSub);
    $("stat-jobs-sub").title = jobsSub;
    const commits = state.decisions.filter((d) => d.decision.outcome === "commit").length;
    setText("stat-decisions", String(state.decisions.length));
    setText("stat-decisions-sub", `${commits} commit · ${state.decisions.length - commits} reject`);
    setText("stat-rounds", String(state.rounds));
    setText("stat-rounds-sub", `${state.decisions.filter((d) => d.unanimous).length} unanimous decisions`);
    setText("stat-blocked", String(state.blocked));
    setText("stat-blocked-sub", `${plural(state.refused, "vote")} refused`);
    const excluded = [...state.reputation.entries()].filter(([, r]) => r.excluded).map(([a]) => a);
    setText("stat-excluded", String(excluded.length));
    setText("stat-excluded-sub", excluded.join(", ") || "none");
    $("stat-excluded-sub").title = excluded.join(", ");
    setText("stat-now", fmtSim(state.now));
    setText("stat-now-sub", `${plural(state.events, "event")} · ${plural(state.llmCalls, "LLM call")}`);
  }

  const VOTE_ORDER = { accept: 0, reject: 1, refused: 2, silent: 3, waiting: 4 };

  function renderVotes() {
    const current = state.current;
    const list = $("vote-list"), bar = $("vote-bar"), result = $("vote-result");
    if (!current) {
      setText("vote-job", "No vote yet.");
      list.replaceChildren();
      bar.replaceChildren();
      result.textContent = "";
      return;
    }
    const job = state.jobs.get(current.job);
    const candidate = state.candidates.get(roundKey(current.job, current.round));
    const votes = state.votes.get(roundKey(current.job, current.round)) || new Map();
    const tally = state.tallies.get(current.job);
    const decided = tally && tally.round === current.round ? tally : null;
    const where = candidate && candidate.placement ? `${candidate.placement.pool}: ${nodeList(candidate.placement.nodes)}` : "";
    setText("vote-job", [
      `Job ${current.job}${job && job.name ? ` (${job.name})` : ""} · round ${current.round}`,
      candidate ? ` · candidate from ${candidate.proposer}${where ? ` on ${where}` : ""}` : "",
    ].join(""));
    result.className = `pill ${decided ? (decided.passed ? "passed" : "failed") : "pending"}`;
    result.textContent = decided ? (decided.passed ? "quorum reached" : "no quorum") : "voting";

    const agents = Object.keys(state.started ? state.started.agents || {} : {});
    for (const agent of votes.keys()) if (!agents.includes(agent)) agents.push(agent);
    const rows = agents.map((agent) => ({ agent, ...(votes.get(agent) || { choice: "waiting", confidence: null, reasoning: "" }) }));
    rows.sort((a, b) => VOTE_ORDER[a.choice] - VOTE_ORDER[b.choice] || byName(a.agent, b.agent));
    drawVoteBar(bar, rows, decided ? decided.quorum : quorum(), decided);
    list.replaceChildren(...rows.map((row) => h("li", { data: { agent: row.agent, vote: row.choice } },
      h("span", { class: "agent", text: row.agent, title: row.agent }),
      h("span", { class: `pill ${row.choice}`, text: row.choice }),
      h("span", { class: "conf", text: row.confidence === null ? "" : fmt2(row.confidence), title: "confidence" }),
      h("span", { class: "why", text: row.reasoning || "", title: row.reasoning || "" }))));
  }

  function drawVoteBar(svg, rows, q, tally) {
    const width = Math.max(svg.clientWidth || 0, 240);
    const n = rows.length;
    svg.setAttribute("viewBox", `0 0 ${width} 58`);
    const cellW = n ? (width - 2) / n : width;
    const parts = rows.map((row, i) => s("rect", { class: `vote-cell ${row.choice}`, x: 2 + i * cellW, y: 18,
      width: Math.max(cellW - 2, 1), height: 22, rx: 3 }, s("title", {}, `${row.agent}: ${row.choice}`)));
    const accepts = tally ? tally.accepts : rows.filter((r) => r.choice === "accept").length;
    parts.push(s("text", { x: 1, y: 12 }, `${accepts} accept${accepts === 1 ? "" : "s"} of ${n}`));
    if (Number.isFinite(q) && n) {
      const x = 1 + Math.min(q, n) * cellW;
      const anchor = x > width - 30 ? "end" : x < 30 ? "start" : "middle";
      parts.push(s("line", { class: "q-line", x1: x, x2: x, y1: 14, y2: 44 }));
      parts.push(s("text", { class: "q-label", x, y: 56, "text-anchor": anchor }, `quorum q = ${q}`));
    }
    if (tally && tally.accept_weight !== null && tally.accept_weight !== undefined) {
      parts.push(s("text", { x: width - 1, y: 12, "text-anchor": "end" },
        `weight ${fmt2(tally.accept_weight)} of ${fmt2(tally.total_weight)}, needs ${fmt2(tally.needed_weight)}`));
    }
    svg.replaceChildren(...parts);
  }

  function renderReputation() {
    const agents = [...state.reputation.keys()];
    const specialty = state.started ? state.started.agents || {} : {};
    const pools = state.started ? state.started.pools || {} : {};
    $("rep-list").replaceChildren(...agents.map((agent) => {
      const rep = state.reputation.get(agent);
      const known = rep.value !== null && rep.value !== undefined;
      const level = !known ? "unknown" : rep.value < 0.5 ? "low" : rep.value < 0.8 ? "suspect" : "ok";
      const fill = h("div", { class: `rep-fill ${level}`, style: { width: `${known ? rep.value * 100 : 100}%` } });
      const tags = [];
      if (rep.excluded) tags.push(h("span", { class: "pill excluded", text: "excluded" }));
      if (rep.readmitted) tags.push(h("span", { class: "pill readmitted", text: "readmitted" }));
      if (!rep.excluded && rep.health === "suspect") tags.push(h("span", { class: "pill suspect", text: "suspect" }));
      if (state.faults.has(agent)) {
        tags.push(h("span", { class: "pill fault", text: `fault: ${state.faults.get(agent)}`, title: "injected by the scenario" }));
      }
      const label = [specialty[agent], pools[agent]].filter(Boolean).join(" · ");
      return h("li", { class: "rep-row", data: { agent, value: known ? rep.value : "" } },
        h("span", { class: "rep-name", title: agent }, agent, label ? h("span", { class: "muted", text: `  ${label}` }) : null),
        h("span", { class: "rep-value", text: known ? fmt2(rep.value) : "—" }),
        h("div", { class: "rep-track" }, fill),
        h("div", { class: "rep-foot" },
          h("span", { class: "why", text: known ? rep.reason || "" : "no change yet", title: rep.reason || "" }),
          h("span", { class: "rep-tags" }, tags)));
    }));
  }

  function renderFeed() {
    $("feed").replaceChildren(...state.feed.slice().reverse().map((item) => h("li", {},
      h("span", { class: "seq", text: `#${item.seq}` }),
      h("span", { class: "what" }, h("span", { class: `tag ${item.cls}`, text: item.tag }), item.text))));
  }

  function renderDecisions() {
    const rows = state.decisions.slice().reverse().map((entry) => {
      const d = entry.decision, tally = entry.tally, job = state.jobs.get(d.job_id);
      const q = tally ? tally.quorum : quorum();
      const voters = d.voters || (state.started ? state.started.n : 0);
      let qcell = h("span", { class: "muted", text: "no vote round" });
      if (d.rounds > 0 || d.outcome === "commit") {
        const passed = tally ? tally.passed : d.accepts >= q;
        const pct = voters ? Math.min(100, (d.accepts / voters) * 100) : 0;
        const qpct = voters ? Math.min(100, (q / voters) * 100) : 0;
        qcell = h("div", { class: "qcell" },
          h("div", { class: "qbar", title: `${d.accepts} of ${voters} voters accepted; quorum ${q}` },
            h("div", { class: `qfill${passed ? "" : " short"}`, style: { width: `${pct}%` } }),
            h("div", { class: "qline", style: { left: `${qpct}%` } })),
          h("span", { class: "qtext", text: `${d.accepts}/${voters} ${d.accepts >= q ? "≥" : "<"} q=${q}` }));
      }
      const nodes = d.placement ? d.placement.nodes || [] : [];
      const place = d.placement
        ? h("div", { class: "place", title: nodes.join(", ") }, h("span", { class: "pool", text: d.placement.pool }),
          h("span", { class: "nodes", text: nodeList(nodes, 3) }))
        : h("span", { class: "muted", text: "—" });
      return h("tr", { data: { job: d.job_id, outcome: d.outcome } },
        h("td", { class: "job" }, d.job_id, job && job.name ? h("span", { class: "job-name", text: job.name, title: job.name }) : null),
        h("td", { class: "num", text: String(d.rounds) }),
        h("td", {}, qcell),
        h("td", { class: "num", text: tally ? String(tally.rejects) : "—" }),
        h("td", { class: "num", text: tally ? String(tally.silent) : "—" }),
        h("td", {}, h("span", { class: `pill ${d.outcome}`, text: d.outcome }),
          d.outcome !== "commit" && d.reason ? h("span", { class: "reason", text: d.reason, title: d.reason }) : null),
        h("td", {}, place));
    });
    $("decisions").tBodies[0].replaceChildren(...rows);
  }

  const jobNodes = (job) => job.ranOn || (job.placement ? job.placement.nodes : null) || [];

  function runningOn() {
    const on = new Map();  // node -> jobs on it now
    for (const job of state.jobs.values()) {
      if (job.outcome !== "commit" || job.start === null || job.finish !== null) continue;
      for (const node of jobNodes(job)) {
        if (!on.has(node)) on.set(node, []);
        on.get(node).push(job);
      }
    }
    return on;
  }

  function lastRan() {
    const last = new Map();  // node -> the job that finished on it last
    const done = [...state.jobs.values()].filter((j) => j.finish !== null).sort((a, b) => a.finish - b.finish);
    for (const job of done) for (const node of jobNodes(job)) last.set(node, job);
    return last;
  }

  function renderNodes() {
    const on = runningOn(), last = lastRan();
    const byPool = new Map();
    for (const [name, node] of state.nodes) {
      const pool = node.pool || "other";
      if (!byPool.has(pool)) byPool.set(pool, []);
      byPool.get(pool).push(name);
    }
    const compact = state.nodes.size > COMPACT_NODES;
    const groups = [...byPool.keys()].sort(byName).map((pool) => h("div", { class: "node-pool" },
      h("div", { class: "node-pool-name", text: `${pool} · ${plural(byPool.get(pool).length, "node")} seen` }),
      h("div", { class: "node-cells" }, byPool.get(pool).sort(byName).map((name) => nodeCell(name, on.get(name) || [], last.get(name), compact)))));
    const busy = [...state.nodes.keys()].filter((n) => on.has(n)).length;
    const down = [...state.nodes.values()].filter((n) => n.down).length;
    setText("nodes-sub", state.nodes.size ? `${busy} busy · ${down} down · at ${fmtSim(state.now)}` : "");
    $("node-grid").replaceChildren(...(groups.length ? groups
      : [h("p", { class: "muted", text: "No placement yet: nodes appear as jobs are placed on them." })]));
    renderPools();
  }

  function nodeCell(name, jobs, ran, compact) {
    const node = state.nodes.get(name);
    const last = jobs[jobs.length - 1];
    const cls = node.down ? "down" : last ? "busy" : "free";
    const title = [name, node.down ? `down${node.reason ? `: ${node.reason}` : ""}` : null,
      ...jobs.map((j) => `running ${j.id}${j.name ? ` (${j.name})` : ""}`),
      !last && ran ? `free; ${ran.id} ran here last` : null].filter(Boolean).join("\n");
    // A busy node takes its job's colour; a free one keeps a line of the last job's, so a finished
    // run still shows where its jobs ran.
    const style = last && !node.down ? { background: jobColor(last), borderColor: jobColor(last) }
      : ran && !node.down ? { borderBottomColor: jobColor(ran) } : {};
    if (compact) Object.assign(style, { minWidth: "12px", width: "12px", height: "12px", padding: "0" });
    return h("div", { class: `node ${cls}`, title, style, data: { node: name, jobs: jobs.map((j) => j.id).join(" ") } },
      compact ? null : name, jobs.length > 1 && !compact ? h("span", { class: "count", text: `×${jobs.length}` }) : null);
  }

  function renderPools() {
    const occ = state.occupancy;
    $("pools-wrap").hidden = !occ;
    if (!occ) return;
    setText("pools-sub", `after ${occ.job_id} at ${fmtSim(occ.sim_time)}`);
    $("pools").replaceChildren(...(occ.pools || []).map((p) => h("li", { class: "pool-row", data: { pool: p.pool } },
      h("span", { class: "pool-name", text: p.label ? `${p.pool} · ${p.label}` : p.pool, title: (p.running || []).join(", ") }),
      h("div", { class: "pool-track", title: `jobs ${Math.round(p.jobs * 100)}% · background ${Math.round(p.background * 100)}% · ${p.job_nodes}/${p.nodes} nodes hold jobs` },
        h("div", { class: "pool-jobs", style: { width: `${p.jobs * 100}%` } }),
        h("div", { class: "pool-bg", style: { width: `${p.background * 100}%` } })),
      h("span", { class: "pool-pct", text: `${Math.round(p.total * 100)}%` }))));
  }

  // -- Gantt chart: one row per job, x = simulated time ----------------------------------------------
  const TICK_STEPS = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400, 172800, 604800];

  function renderGantt() {
    const svg = $("gantt");
    const jobs = [...state.jobs.values()];
    const width = Math.max($("gantt-wrap").clientWidth || 0, 480);
    const labelW = 190, right = 56, top = 24, rowH = 22;
    const height = top + Math.max(jobs.length, 1) * rowH + 6;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("height", String(height));
    if (!jobs.length) {
      svg.replaceChildren(s("text", { x: 8, y: 30 }, "No job submitted yet."));
      return;
    }
    const times = jobs.flatMap((j) => [j.submit, j.start, j.finish]).filter(Number.isFinite);
    if (Number.isFinite(state.now)) times.push(state.now);
    const t0 = Math.min(0, ...times);
    let t1 = Math.max(...times);
    if (t1 <= t0) t1 = t0 + 1;  // a single instant: any span shows it
    const x = (t) => labelW + ((t - t0) / (t1 - t0)) * (width - labelW - right);
    const parts = [hatchDefs()];

    const step = TICK_STEPS.find((st) => (t1 - t0) / st <= Math.max(2, Math.floor((width - labelW) / 90))) || TICK_STEPS.at(-1);
    for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) {
      parts.push(s("line", { class: "grid-line", x1: x(t), x2: x(t), y1: top - 4, y2: height - 4 }));
      parts.push(s("text", { x: x(t), y: top - 9, "text-anchor": "middle" }, fmtTick(t)));
    }
    jobs.forEach((job, i) => parts.push(...ganttRow(job, top + i * rowH, rowH, x, labelW, width)));
    if (status !== "done" && Number.isFinite(state.now)) {
      parts.push(s("line", { class: "now-line", x1: x(state.now), x2: x(state.now), y1: top - 4, y2: height - 4 }));
      parts.push(s("text", { class: "now-label", x: x(state.now) + 4, y: height - 8 }, "now"));
    }
    svg.replaceChildren(...parts);
  }

  function hatchDefs() {
    return s("defs", {}, s("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)" },
    s("rect", { width: 6, height: 6, fill: "rgba(248,81,73,0.18)" }),
    s("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "rgba(248,81,73,0.8)", "stroke-width": 3 })));
  }

  function ganttRow(job, y, rowH, x, labelW, width) {
    const parts = [];
    const mid = y + rowH / 2;
    if (job.index % 2 === 0) parts.push(s("rect", { class: "row-bg", x: 0, y, width, height: rowH }));
    parts.push(s("text", { class: "row-label", x: 8, y: mid + 4 }, shorten(job.id, 14),
      s("tspan", { class: "row-name", dx: 6 }, shorten(job.name || job.kind, 18))));
    const title = ganttTitle(job);
    if (job.outcome === "reject") {
      const cx = x(job.submit);
      parts.push(s("path", { class: "rejected", d: `M${cx} ${mid - 5} L${cx + 5} ${mid} L${cx} ${mid + 5} L${cx - 5} ${mid} Z`,
        "data-job": job.id }, s("title", {}, title)));
      parts.push(s("text", { x: cx + 9, y: mid + 4 }, "rejected"));
      return parts;
    }
    if (job.start === null) {  // not decided yet: waiting since it was submitted
      const end = Number.isFinite(state.now) ? state.now : job.submit;
      parts.push(s("rect", { class: "pending", x: x(job.submit), y: y + 5, width: Math.max(x(end) - x(job.submit), 2),
        height: rowH - 10, rx: 3, "data-job": job.id }, s("title", {}, title)));
      return parts;
    }
    if (job.started && job.start > job.submit) {
      parts.push(s("line", { class: "wait", x1: x(job.submit), x2: x(job.start), y1: mid, y2: mid }));
    }
    const end = job.finish !== null ? job.finish : Number.isFinite(state.now) ? Math.max(state.now, job.start) : job.start;
    const x0 = x(job.start), w = Math.max(x(end) - x0, 3);
    const cls = job.finish === null ? "running" : job.state;
    parts.push(s("rect", { class: `bar ${cls}`, x: x0, y: y + 4, width: w, height: rowH - 8, rx: 3,
      fill: jobColor(job), "data-job": job.id, "data-state": job.state }, s("title", {}, title)));
    const label = job.finish === null ? "running" : job.state === "completed" ? "" : job.state;
    const text = [job.placement ? job.placement.pool : "", label].filter(Boolean).join(" · ");
    const inside = text.length * 6.2 + 10 < w;
    const labelClass = `bar-label${inside ? "" : " outside"}${cls === "failed" || cls === "lost" ? " bad" : ""}`;
    parts.push(s("text", { class: labelClass, x: inside ? x0 + 5 : x0 + w + 5, y: mid + 3.5 }, text));
    return parts;
  }

  function ganttTitle(job) {
    const lines = [`${job.id}${job.name ? ` — ${job.name}` : ""}`, `submitted ${fmtSim(job.submit)}`];
    if (job.retryOf) lines.push(`places ${job.retryOf} again`);
    if (job.outcome === "reject") lines.push(`rejected: ${job.reason}`);
    if (job.start !== null) lines.push(`started ${fmtSim(job.start)}${job.started ? "" : " (committed)"}`);
    if (job.finish !== null) lines.push(`${job.state} ${fmtSim(job.finish)}`);
    if (job.placement) lines.push(`${job.placement.pool}: ${(job.placement.nodes || []).join(", ")}`);
    return lines.join("\n");
  }

  // -- the runs list -----------------------------------------------------------------------------------
  async function refreshRuns() {
    try {
      const response = await fetch("/api/runs", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      runs = Array.isArray(data.runs) ? data.runs : [];
    } catch (err) {
      setText("runs-count", "unavailable");
      return;
    }
    renderRuns();
  }

  function renderRuns() {
    const filter = $("runs-filter").value.trim().toLowerCase();
    const shown = runs.filter((r) => !filter || r.id.toLowerCase().includes(filter) || r.scenario.toLowerCase().includes(filter));
    setText("runs-count", filter ? `${shown.length} of ${runs.length}` : String(runs.length));
    $("runs-empty").hidden = runs.length > 0;
    $("runs").replaceChildren(...shown.map((run) => h("li", {},
      h("a", { href: `#run=${encodeURIComponent(run.id)}`, class: run.id === runId ? "selected" : "", data: { run: run.id } },
        h("span", { class: "run-scenario", text: run.scenario || "(no scenario yet)" }),
        h("span", { class: `run-status ${run.status}`, text: run.status }),
        h("span", { class: "run-id", text: run.id, title: run.id }),
        h("span", { class: "run-meta", text: `${fmtWhen(run.started)} · ${plural(run.decisions, "decision")}` })))));
  }

  // -- following one run -------------------------------------------------------------------------------
  function setStatus(value) {
    status = value;
    scheduleRender();
  }

  function listedStatus(id) {
    const run = runs.find((r) => r.id === id);
    return run ? run.status : null;
  }

  function openRun(id) {
    if (source) source.close();
    source = null;
    runId = id;
    state = freshState();
    $("placeholder").hidden = Boolean(id);
    $("view").hidden = !id;
    setText("conn", "");
    renderRuns();
    if (!id) {
      setStatus("none");
      return;
    }
    setStatus("loading");
    const stream = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
    source = stream;
    let caughtUp = false;
    const mine = (fn) => (e) => { if (source === stream) fn(e); };
    stream.onmessage = mine((e) => {
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch (err) {
        state.problems.push(`an event the page could not read: ${err.message}`);
        return scheduleRender();
      }
      apply(ev);
      if (caughtUp && status !== "done") status = "live";  // it moves: it is being written
      scheduleRender();
    });
    stream.addEventListener("caught-up", mine(() => {
      caughtUp = true;
      if (!state.ended) setStatus(listedStatus(id) === "stopped" ? "stopped" : "live");
    }));
    stream.addEventListener("done", mine(() => {
      stream.close();
      setText("conn", "");
      setStatus("done");
      refreshRuns();
    }));
    stream.addEventListener("problem", mine((e) => {
      try {
        const p = JSON.parse(e.data);
        state.problems.push(`event log, line ${p.line}: ${p.message}`);
      } catch (err) {
        state.problems.push("the server reported a problem it could not describe");
      }
      scheduleRender();
    }));
    stream.addEventListener("reset", mine(() => {
      state = freshState();
      state.problems.push("the event log was cut back (the run was resumed): read again from the start");
      scheduleRender();
    }));
    stream.onopen = mine(() => setText("conn", ""));
    stream.onerror = mine(() => {
      if (stream.readyState === EventSource.CLOSED) {
        setText("conn", "");
        state.problems.push(`cannot follow run ${id}: it does not exist or the server refused it`);
        setStatus("none");
        scheduleRender();
      } else {
        setText("conn", "reconnecting…");
      }
    });
  }

  function runFromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    return params.get("run");
  }

  function onHashChange() {
    const id = runFromHash();
    if (id !== runId) openRun(id);
  }

  function start() {
    window.addEventListener("hashchange", onHashChange);
    window.addEventListener("resize", scheduleRender);
    $("runs-filter").addEventListener("input", renderRuns);
    refreshRuns().then(() => {
      if (!runFromHash() && runs.length) history.replaceState(null, "", `#run=${encodeURIComponent(runs[0].id)}`);
      onHashChange();
    });
    setInterval(refreshRuns, RUNS_REFRESH_MS);
    render();
  }

  start();
})();
