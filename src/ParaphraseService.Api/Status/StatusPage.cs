using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ParaphraseService.Api.FineTuning;

namespace ParaphraseService.Api.Status;

/// <summary>
/// The status page as one server-rendered HTML document: model line, serving numbers, adapters, fine-tune jobs with their
/// loss charts. Every value that came from a user (adapter names, job errors, problems) is HTML-encoded here. A small
/// inline script refreshes the numbers in place from <c>/status.json</c>; it reloads the page only when the set of adapters
/// or jobs (or a job's state) changed, which the numbers alone cannot show.
/// </summary>
public static class StatusPage
{
    /// <summary>How often the script refreshes: a glance's worth, and a handful of cheap reads per viewer.</summary>
    public const int RefreshMilliseconds = 3000;

    private static readonly HtmlEncoder Html = HtmlEncoder.Default;

    public static string Render(StatusSnapshot s)
    {
        var h = new StringBuilder(16 * 1024);
        h.Append("""
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>ParaphraseService status</title>
            <noscript><meta http-equiv="refresh" content="10"></noscript>
            """);
        h.Append("<style>").Append(Css).Append("</style>\n</head>\n");
        h.Append(CultureInfo.InvariantCulture, $"""<body data-shape="{E(Shape(s))}" data-refreshes="0">""").Append('\n');

        h.Append("""<header class="top"><div><h1>ParaphraseService</h1><p class="model" id="model-line">""");
        ModelLine(h, s.Model);
        h.Append("""</p></div><nav><a href="/swagger">API (Swagger UI)</a><a href="/metrics">Prometheus metrics</a><a href="/status.json">status.json</a></nav></header>""").Append('\n');
        h.Append("<main>\n");
        Serving(h, s);
        Adapters(h, s.Adapters);
        FineTunes(h, s);
        h.Append("</main>\n<script>").Append(Script).Append("</script>\n</body>\n</html>\n");
        return h.ToString();
    }

    /// <summary>What changes the page's structure; the script compares it with each snapshot and reloads when it differs.</summary>
    public static string Shape(StatusSnapshot s) => string.Join('|',
        s.Model.State,
        string.Join(',', s.Adapters.Select(a => a.Name)),
        string.Join(',', s.FineTunes.Select(j => j.Id + ":" + State(j.State))));

    private static void ModelLine(StringBuilder h, ModelStatus m)
    {
        h.Append("<strong>").Append(E(m.Source)).Append("</strong>");
        switch (m.State)
        {
            case "ready":
                h.Append(CultureInfo.InvariantCulture, $" · {m.Layers} layers, hidden size {m.HiddenSize} · {E(m.Device)} · {E(m.Dtype)}");
                h.Append(m.Quantization == "int8" ? " · int8 weights" : " · full-precision weights");
                h.Append(" · KV cache ").Append(E(m.KvCache));
                if (m.Demo == true) h.Append(""" <span class="badge">demo: random weights</span>""");
                break;
            case "failed":
                h.Append(""" · <span class="badge failed">failed to load</span> <span class="error">""").Append(E(m.Error)).Append("</span>");
                break;
            default:
                h.Append(""" · <span class="badge queued">loading…</span>""");
                break;
        }
    }

    private static void Serving(StringBuilder h, StatusSnapshot s)
    {
        var v = s.Serving;
        h.Append("""<section class="card" id="serving"><h2>Serving</h2><dl class="stats">""");
        Stat(h, "Queue depth", "queueDepth", v.QueueDepth.ToString(CultureInfo.InvariantCulture), $"of {v.MaxQueuedRequests}");
        Stat(h, "Active rows", "activeRows", v.ActiveRows.ToString(CultureInfo.InvariantCulture), $"of {v.MaxBatchRows}");
        Stat(h, "Tokens / s", "tokensPerSecond", Rate(v.TokensPerSecond), "last 10 s");
        Stat(h, "Memory", "residentBytes", Bytes(v.ResidentBytes), "resident");
        Stat(h, "Peak memory", "peakResidentBytes", Bytes(v.PeakResidentBytes), "since start");
        Stat(h, "Fine-tunes running", "fineTunesRunning", v.FineTunesRunning.ToString(CultureInfo.InvariantCulture), "");
        h.Append("</dl>");
        h.Append(CultureInfo.InvariantCulture,
            $"""<p class="updated">Updated <span data-field="time">{Clock(s.Time)}</span><span class="stale-note"> · not refreshing: the service does not answer</span></p></section>""");
        h.Append('\n');
    }

    private static void Stat(StringBuilder h, string label, string field, string value, string note) =>
        h.Append(CultureInfo.InvariantCulture, $"""<div><dt>{label}</dt><dd data-field="{field}">{value}</dd><small>{note}</small></div>""");

    private static void Adapters(StringBuilder h, IReadOnlyList<AdapterStatus> adapters)
    {
        h.Append(CultureInfo.InvariantCulture, $"""<section class="card" id="adapters"><h2>Adapters <span class="count">{adapters.Count}</span></h2>""");
        if (adapters.Count == 0)
        {
            h.Append("""<p class="empty">No adapters stored. Upload one with POST /admin/adapters or train one with a fine-tune.</p></section>""").Append('\n');
            return;
        }
        h.Append("""<table><thead><tr><th>Name</th><th>Origin</th><th>Rank / alpha</th><th>Targets</th><th class="num">Size</th><th>Created</th><th>Loaded</th><th class="num">Requests</th></tr></thead><tbody>""");
        foreach (var a in adapters)
        {
            h.Append(CultureInfo.InvariantCulture, $"""<tr data-adapter="{E(a.Name)}"><td class="name">{E(a.Name)}""");
            if (a.Problem is not null) h.Append("""<div class="error">""").Append(E(a.Problem)).Append("</div>");
            h.Append(CultureInfo.InvariantCulture, $"</td><td>{E(a.Origin ?? "–")}</td><td>{a.Rank?.ToString(CultureInfo.InvariantCulture) ?? "–"} / {Number(a.Alpha)}</td>");
            h.Append(CultureInfo.InvariantCulture, $"""<td>{E(a.Targets ?? "–")}</td><td class="num">{Bytes(a.SizeBytes)}</td><td>{Date(a.Created)}</td>""");
            h.Append(CultureInfo.InvariantCulture, $"""<td data-field="loaded">{(a.Loaded ? "yes" : "no")}</td><td class="num" data-field="requestsServed">{a.RequestsServed}</td></tr>""");
        }
        h.Append("</tbody></table></section>\n");
    }

    private static void FineTunes(StringBuilder h, StatusSnapshot s)
    {
        h.Append(CultureInfo.InvariantCulture, $"""<section class="card" id="fine-tunes"><h2>Fine-tunes <span class="count">{s.FineTunes.Count + s.OlderFineTunes}</span></h2>""");
        if (s.FineTunes.Count == 0)
            h.Append("""<p class="empty">No fine-tune jobs yet. Start one with POST /admin/fine-tunes.</p>""");
        foreach (var j in s.FineTunes)
        {
            h.Append(CultureInfo.InvariantCulture, $"""<article class="job" data-job="{E(j.Id)}" data-step="{j.Step}"><div class="job-info">""");
            h.Append(CultureInfo.InvariantCulture,
                $"""<h3><span class="name">{E(j.Adapter)}</span> <span class="badge {State(j.State)}">{State(j.State)}</span> <small class="id">{E(j.Id)}</small></h3><dl class="facts">""");
            Fact(h, "Step", "step", Progress(j));
            Fact(h, "Epoch", "epoch", j.Epoch.ToString(CultureInfo.InvariantCulture));
            Fact(h, "Tokens / s", "tokensPerSecond", j.TokensPerSecond is { } t ? Rate(t) : "–");
            Fact(h, "Time left", "eta", Eta(j.EtaSeconds));
            Fact(h, "Train loss", "trainLoss", Loss(j.TrainLoss));
            Fact(h, "Eval loss", "evalLoss", Loss(j.EvalLoss));
            if (j.DatasetFormat is not null || j.TrainPairs is not null)
                Fact(h, "Dataset", null, $"{E(j.DatasetFormat ?? "?")} · {j.TrainPairs} train / {j.EvalPairs} eval pairs");
            if (j.Metrics.TryGetValue("eval_loss_base", out var before) && j.Metrics.TryGetValue("eval_loss", out var after))
                Fact(h, "Eval loss, base → tuned", null, $"{Loss(before)} → {Loss(after)}");
            if (j.Metrics.TryGetValue("bleu", out var bleu))
                Fact(h, "BLEU · iBLEU", null, $"{bleu.ToString("0.0", CultureInfo.InvariantCulture)} · {(j.Metrics.TryGetValue("ibleu", out var ibleu) ? ibleu.ToString("0.0", CultureInfo.InvariantCulture) : "–")}");
            Fact(h, "Created", null, Date(j.CreatedAt));
            if (j.FinishedAt is { } finished) Fact(h, "Finished", null, Date(finished));
            if (j.QueuePosition is { } position) Fact(h, "Queue position", null, position == 0 ? "next" : (position + 1).ToString(CultureInfo.InvariantCulture));
            h.Append("</dl>");
            if (j.Error is not null) h.Append("""<pre class="error">""").Append(E(j.Error)).Append("</pre>");
            h.Append("""</div><div class="chart">""").Append(LossChart.Svg(j.TrainCurve, j.EvalCurve)).Append("</div></article>\n");
        }
        if (s.OlderFineTunes > 0)
            h.Append(CultureInfo.InvariantCulture, $"""<p class="empty">{s.OlderFineTunes} older jobs are not shown (GET /admin/fine-tunes lists them all).</p>""");
        h.Append("</section>\n");
    }

    private static void Fact(StringBuilder h, string label, string? field, string value) => h.Append(field is null
        ? $"<div><dt>{label}</dt><dd>{value}</dd></div>"
        : $"""<div><dt>{label}</dt><dd data-field="{field}">{value}</dd></div>""");

    private static string E(string? value) => Html.Encode(value ?? "");

    // The formats below are mirrored by the script's fmt object: change them together.
    private static string State(FineTuneState state) => JsonNamingPolicy.CamelCase.ConvertName(state.ToString());
    private static string Progress(FineTuneStatus j) => j.TotalSteps > 0 ? $"{j.Step} / {j.TotalSteps}" : j.Step.ToString(CultureInfo.InvariantCulture);
    private static string Rate(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);
    private static string Loss(double? v) => v?.ToString("0.000", CultureInfo.InvariantCulture) ?? "–";
    private static string Number(double? v) => v?.ToString("0.##", CultureInfo.InvariantCulture) ?? "–";
    private static string Clock(DateTimeOffset t) => t.UtcDateTime.ToString("HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";
    private static string Date(DateTimeOffset? t) => t?.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) ?? "–";

    internal static string Bytes(long v) =>
        v >= 1L << 30 ? (v / (double)(1L << 30)).ToString("0.00", CultureInfo.InvariantCulture) + " GiB"
        : v >= 1L << 20 ? Math.Round(v / (double)(1L << 20)).ToString("0", CultureInfo.InvariantCulture) + " MiB"
        : Math.Round(v / 1024.0).ToString("0", CultureInfo.InvariantCulture) + " KiB";

    internal static string Eta(double? seconds)
    {
        if (seconds is not { } s || !double.IsFinite(s)) return "–";
        var total = (long)Math.Round(Math.Max(0, s));
        return total < 60 ? $"{total}s" : total < 3600 ? $"{total / 60}m {total % 60}s" : $"{total / 3600}h {total / 60 % 60}m";
    }

    private const string Css = """
        :root { --fg: #1e293b; --muted: #64748b; --line: #e2e8f0; --bg: #f8fafc; --card: #fff; --accent: #2563eb; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
        header.top { background: var(--card); border-bottom: 1px solid var(--line); padding: 14px 24px; display: flex; flex-wrap: wrap;
          gap: 8px 24px; align-items: center; justify-content: space-between; }
        h1 { font-size: 18px; margin: 0; }
        h2 { font-size: 15px; margin: 0 0 12px; }
        h3 { font-size: 14px; margin: 0 0 8px; }
        .model { margin: 2px 0 0; color: var(--muted); }
        .model strong { color: var(--fg); font-weight: 600; }
        nav a { margin-left: 18px; color: var(--accent); text-decoration: none; }
        nav a:hover { text-decoration: underline; }
        main { max-width: 1120px; margin: 0 auto; padding: 20px 24px 40px; display: grid; gap: 18px; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px; }
        .count { color: var(--muted); font-weight: 400; margin-left: 4px; }
        .stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 0; }
        .stats > div { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
        dt { color: var(--muted); font-size: 12px; }
        dd { margin: 0; font-variant-numeric: tabular-nums; }
        .stats dd { font-size: 22px; font-weight: 600; }
        .stats small { color: var(--muted); font-size: 12px; }
        .updated { color: var(--muted); font-size: 12px; margin: 10px 0 0; }
        .stale-note { display: none; color: #b91c1c; }
        body.stale .stale-note { display: inline; }
        table { width: 100%; border-collapse: collapse; }
        th, td { text-align: left; padding: 7px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-size: 12px; font-weight: 600; }
        .num { text-align: right; font-variant-numeric: tabular-nums; }
        .name { font-weight: 600; overflow-wrap: anywhere; }
        .badge { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px; font-weight: 500; background: #f1f5f9; color: #475569; }
        .badge.running { background: #dbeafe; color: #1d4ed8; }
        .badge.succeeded { background: #dcfce7; color: #15803d; }
        .badge.failed { background: #fee2e2; color: #b91c1c; }
        .badge.cancelled, .badge.queued { background: #f1f5f9; color: #475569; }
        .id { color: var(--muted); font-weight: 400; }
        .job { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 420px); gap: 20px; padding: 14px 0; border-top: 1px solid var(--line); }
        .job:first-of-type { border-top: 0; padding-top: 0; }
        .facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px 16px; margin: 0; }
        .error { color: #b91c1c; white-space: pre-wrap; overflow-wrap: anywhere; font: 12px/1.4 ui-monospace, monospace; margin: 8px 0 0; }
        .empty { color: var(--muted); margin: 0; }
        .loss-chart { width: 100%; height: auto; }
        @media (max-width: 760px) { .job { grid-template-columns: 1fr; } nav a { margin: 0 14px 0 0; } }
        """;

    // Refreshes the numbers in place every few seconds (keeps scroll position, no flicker); textContent only, so nothing
    // from the JSON is ever parsed as HTML. The one innerHTML is the loss chart, drawn by LossChart from numbers alone.
    private static readonly string Script = """
        (() => {
          const every = EVERY;
          const fmt = {
            rate: v => v == null ? '–' : v.toFixed(1),
            loss: v => v == null ? '–' : v.toFixed(3),
            bytes: v => v >= 1073741824 ? (v / 1073741824).toFixed(2) + ' GiB' : v >= 1048576 ? Math.round(v / 1048576) + ' MiB' : Math.round(v / 1024) + ' KiB',
            eta: v => {
              if (v == null) return '–';
              const t = Math.round(Math.max(0, v));
              return t < 60 ? t + 's' : t < 3600 ? Math.floor(t / 60) + 'm ' + t % 60 + 's' : Math.floor(t / 3600) + 'h ' + Math.floor(t / 60) % 60 + 'm';
            },
            clock: v => new Date(v).toISOString().slice(11, 19) + ' UTC',
          };
          const shape = s => [s.model.state, s.adapters.map(a => a.name).join(','), s.fineTunes.map(j => j.id + ':' + j.state).join(',')].join('|');
          const set = (root, field, text) => { for (const el of root.querySelectorAll('[data-field="' + field + '"]')) el.textContent = text; };
          let refreshes = 0;
          async function refresh() {
            try {
              const response = await fetch('/status.json', { cache: 'no-store' });
              if (!response.ok) throw new Error('status.json: ' + response.status);
              const s = await response.json();
              if (shape(s) !== document.body.dataset.shape) { location.reload(); return; }
              const v = s.serving;
              set(document, 'queueDepth', v.queueDepth);
              set(document, 'activeRows', v.activeRows);
              set(document, 'tokensPerSecond', fmt.rate(v.tokensPerSecond));
              set(document, 'residentBytes', fmt.bytes(v.residentBytes));
              set(document, 'peakResidentBytes', fmt.bytes(v.peakResidentBytes));
              set(document, 'fineTunesRunning', v.fineTunesRunning);
              for (const a of s.adapters) {
                const row = document.querySelector('tr[data-adapter="' + CSS.escape(a.name) + '"]');
                if (!row) continue;
                set(row, 'loaded', a.loaded ? 'yes' : 'no');
                set(row, 'requestsServed', a.requestsServed);
              }
              for (const j of s.fineTunes) {
                const job = document.querySelector('[data-job="' + CSS.escape(j.id) + '"]');
                if (!job) continue;
                set(job, 'step', j.totalSteps > 0 ? j.step + ' / ' + j.totalSteps : j.step);
                set(job, 'epoch', j.epoch);
                set(job, 'tokensPerSecond', fmt.rate(j.tokensPerSecond));
                set(job, 'eta', fmt.eta(j.etaSeconds));
                set(job, 'trainLoss', fmt.loss(j.trainLoss));
                set(job, 'evalLoss', fmt.loss(j.evalLoss));
                if (job.dataset.step !== String(j.step)) {
                  job.dataset.step = j.step;
                  const chart = await fetch('/status/fine-tunes/' + encodeURIComponent(j.id) + '/loss.svg', { cache: 'no-store' });
                  if (chart.ok) job.querySelector('.chart').innerHTML = await chart.text();
                }
              }
              set(document, 'time', fmt.clock(s.time));
              document.body.classList.remove('stale');
              document.body.dataset.refreshes = ++refreshes;
            } catch (e) {
              document.body.classList.add('stale');
            }
            setTimeout(refresh, every);
          }
          setTimeout(refresh, every);
        })();
        """.Replace("EVERY", RefreshMilliseconds.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
}
