// rvos_report: sorts the node table and pages through the expression list (window.REPORT).
"use strict";

function sortable(table) {
  table.querySelectorAll("th").forEach((th, column) => {
    th.addEventListener("click", () => {
      const ascending = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach((other) => other.classList.remove("asc", "desc"));
      th.classList.add(ascending ? "asc" : "desc");
      const body = table.tBodies[0];
      const value = (row) => row.cells[column].dataset.v;
      const rows = Array.from(body.rows).sort((a, b) => {
        const x = value(a), y = value(b), nx = parseFloat(x), ny = parseFloat(y);
        const order = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
}

const PER_PAGE = 50;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function expressionRow(rank, row, nodes) {
  const tr = document.createElement("tr");
  tr.appendChild(cell(String(rank)));
  const image = document.createElement("td"), thumb = document.createElement("a");
  thumb.href = row.page;
  const img = document.createElement("img");
  Object.assign(img, { className: "thumb", loading: "lazy", alt: "", src: row.thumb });
  thumb.appendChild(img);
  image.appendChild(thumb);
  tr.appendChild(image);
  const link = document.createElement("td");
  const a = document.createElement("a");
  a.href = row.page;
  a.textContent = `${row.video} / ${row.exp}`;
  link.appendChild(a);
  tr.appendChild(link);
  tr.appendChild(cell(row.text));
  nodes.forEach((_, i) => tr.appendChild(cell(row.jf ? row.jf[i].toFixed(3) : "-")));
  tr.appendChild(cell(row.agreement.toFixed(3)));
  return tr;
}

function showPage(page) {
  const data = window.REPORT, table = document.getElementById("expressions");
  const pages = Math.max(1, Math.ceil(data.rows.length / PER_PAGE));
  page = Math.min(Math.max(page, 0), pages - 1);
  const head = ["#", "key frame", "expression", "text"]
    .concat(data.nodes.map((n) => `${n.name} J&F`), ["agreement (IoU)"]);
  table.innerHTML = "<thead><tr>" + head.map(() => "<th></th>").join("") + "</tr></thead><tbody></tbody>";
  table.querySelectorAll("th").forEach((th, i) => { th.textContent = head[i]; });
  const first = page * PER_PAGE;
  data.rows.slice(first, first + PER_PAGE).forEach((row, i) => {
    table.tBodies[0].appendChild(expressionRow(first + i + 1, row, data.nodes));
  });
  document.querySelectorAll("nav.pager").forEach((nav) => {
    nav.innerHTML = "";
    const button = (label, target) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.disabled = target === page || target < 0 || target >= pages;
      b.addEventListener("click", () => showPage(target));
      nav.appendChild(b);
    };
    button("\u2190 previous", page - 1);
    nav.appendChild(document.createTextNode(` page ${page + 1} of ${pages} `));
    button("next \u2192", page + 1);
  });
}

document.querySelectorAll("table.sortable").forEach(sortable);
if (window.REPORT) showPage(0);
