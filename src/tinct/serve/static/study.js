// The study page: show a trial's two images, time the answer, POST the vote, repeat.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "tinct-study-session";
const trial = { id: null, shownAt: 0 };

function session() {
  let id = localStorage.getItem(KEY);
  if (!/^[0-9a-f]{32}$/.test(id || "")) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));  // works without https, unlike randomUUID
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem(KEY, id);
  }
  return id;
}

function setStatus(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

function enable(on) {
  for (const i of [0, 1]) $(`choice${i}`).disabled = !on;
  document.body.dataset.state = on ? "ready" : "loading";
}

async function next(attempt = 0) {
  enable(false);
  setStatus("Loading the next pair…", "busy");
  let response;
  try {
    response = await fetch(`/api/study/next?session=${session()}`);
  } catch (err) {
    setStatus(`Cannot reach the server: ${err}`, "error");
    return;
  }
  if (response.status === 503 && attempt < 10) {
    const wait = Number(response.headers.get("Retry-After") || 2);
    setStatus(`The server is busy; trying again in ${wait} s…`, "busy");
    setTimeout(() => next(attempt + 1), wait * 1000);
    return;
  }
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    setStatus(data.detail, "error");
    return;
  }
  localStorage.setItem(KEY, data.session);
  trial.id = data.trial;
  $("votes").textContent = data.votes;
  await Promise.all([0, 1].map((i) => {
    $(`img${i}`).src = data.images[i];
    return $(`img${i}`).decode().catch(() => {});
  }));
  trial.shownAt = performance.now();
  setStatus("");
  enable(true);
}

async function vote(choice, body = null) {
  if (!body) {
    if (!trial.id || $("choice0").disabled) return;
    enable(false);
    body = { trial: trial.id, choice, response_ms: Math.round(performance.now() - trial.shownAt) };
  }
  try {
    const response = await fetch("/api/study/vote", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (response.status === 429) {  // the study's pace limit: send the same vote again when allowed
      const wait = Number(response.headers.get("Retry-After") || 1);
      setStatus(`Saving your vote in ${wait} s…`, "busy");
      setTimeout(() => vote(choice, body), wait * 1000);
      return;
    }
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail);
    $("votes").textContent = data.votes;
  } catch (err) {
    setStatus(`Your vote was not saved: ${err.message || err}`, "error");
    setTimeout(next, 2000);
    return;
  }
  next();
}

for (const i of [0, 1]) $(`choice${i}`).addEventListener("click", () => vote(i));
document.addEventListener("keydown", (e) => {
  if (e.key === "ArrowLeft") vote(0);
  if (e.key === "ArrowRight") vote(1);
});
next();
