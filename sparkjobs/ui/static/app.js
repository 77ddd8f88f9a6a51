// sparkjobs ui: the pages work without this; it only adds live updates and instant switches.
"use strict";

// Filters apply as soon as one is picked.
document.querySelectorAll("select.autosubmit").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});

// "Differences only" hides equal rows at once, and keeps the choice in the URL.
const diffOnly = document.getElementById("diff-only");
if (diffOnly) {
  diffOnly.addEventListener("change", () => {
    document.getElementById("compare-table").classList.toggle("diff-only", diffOnly.checked);
    const url = new URL(window.location.href);
    url.searchParams.set("diff", diffOnly.checked ? "1" : "0");
    history.replaceState(null, "", url);
  });
}

// The driver log of a running run grows as it is written; the page reloads once the run ends.
const log = document.getElementById("log-text");
if (log && log.dataset.live) {
  let offset = Number(log.dataset.offset || 0);
  const follow = () => log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.scrollTop = log.scrollHeight;
  const poll = async () => {
    try {
      const answer = await fetch(`${log.dataset.live}?offset=${offset}`, { cache: "no-store" });
      const data = await answer.json();
      const atEnd = follow();
      if (data.restart) log.textContent = "";
      if (data.text) log.append(document.createTextNode(data.text));  // text, never HTML
      if (atEnd) log.scrollTop = log.scrollHeight;
      offset = data.offset;
      if (!data.running) { window.location.reload(); return; }
    } catch (error) { /* the server may be restarting: try again */ }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
}
