//! Search benchmark: newsstore against PostgreSQL full-text search on the same corpus.
//!
//! ```text
//! cargo bench --bench search -- [--articles 100000] [--repeat 20] [--no-postgres]
//! ```
//!
//! It builds a corpus from the BBC articles in `../shared/data/news` (replicated with unique
//! ids and publication dates spread over two years when more articles are asked for than
//! there are), starts a newsstore server as a separate process on a fresh data folder,
//! loads the corpus through `BatchCreateArticles`, then runs a fixed mix of 57 queries
//! (single words, phrases, boolean, entity-filtered, date-ranged, faceted) through gRPC,
//! each `--repeat` times, one at a time. PostgreSQL is started in the same run on loopback
//! with the same articles (a weighted `tsvector` with a GIN index, ranked by `ts_rank`) and
//! answers the same queries. Results go to stdout and to `target/bench/search-<N>.json`.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use common::*;
use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::{self, ArticleFilter, FacetField, FacetRequest, SearchArticlesRequest};
use prost_types::Timestamp;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
struct Args {
    /// Articles in the corpus.
    #[arg(long, default_value_t = 100_000)]
    articles: usize,
    /// Times each query is run (after two warm-up runs).
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Folder of BBC articles.
    #[arg(long, default_value = "../shared/data/news")]
    corpus: PathBuf,
    /// Skip the PostgreSQL comparison.
    #[arg(long)]
    no_postgres: bool,
    /// Articles per BatchCreateArticles call.
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// Concurrent loaders.
    #[arg(long, default_value_t = 2)]
    loaders: usize,
    /// Keep the newsstore data here; when it already holds a loaded corpus, reuse it and
    /// skip loading (for profiling search at scale without reloading each time).
    #[arg(long)]
    data: Option<PathBuf>,
    // `cargo bench` passes --bench; accept and ignore it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A query in both systems' languages.
struct QuerySpec {
    kind: &'static str,
    ours: SearchArticlesRequest,
    /// `to_tsquery('english', …)` text; empty for filter-only queries.
    pg_query: String,
    /// Extra SQL conditions.
    pg_filter: String,
    /// PostgreSQL also counts sources and months (the facets).
    pg_facets: bool,
}

fn day(offset: i64) -> i64 {
    START + offset * 86_400
}

fn queries() -> Vec<QuerySpec> {
    let mut out = Vec::new();
    let plain = |text: &str| SearchArticlesRequest {
        query: text.into(),
        page_size: 10,
        ..Default::default()
    };
    for word in [
        "economy",
        "election",
        "film",
        "football",
        "music",
        "internet",
        "mobile",
        "oil",
        "china",
        "iraq",
        "olympic",
        "tax",
        "software",
        "broadband",
        "championship",
    ] {
        out.push(QuerySpec {
            kind: "word",
            ours: plain(word),
            pg_query: word.into(),
            pg_filter: String::new(),
            pg_facets: false,
        });
    }
    for phrase in [
        "prime minister",
        "interest rates",
        "mobile phones",
        "general election",
        "world cup",
        "oil prices",
        "chief executive",
        "box office",
        "human rights",
        "six nations",
    ] {
        out.push(QuerySpec {
            kind: "phrase",
            ours: plain(&format!("\"{phrase}\"")),
            pg_query: phrase.split(' ').collect::<Vec<_>>().join(" <-> "),
            pg_filter: String::new(),
            pg_facets: false,
        });
    }
    for (ours, pg) in [
        ("oil AND prices", "oil & prices"),
        ("labour OR conservative", "labour | conservative"),
        ("film -oscar", "film & !oscar"),
        ("(blair OR brown) election", "(blair | brown) & election"),
        (
            "microsoft AND (software OR windows)",
            "microsoft & (software | windows)",
        ),
        ("economy growth -china", "economy & growth & !china"),
        (
            "football AND (chelsea OR arsenal)",
            "football & (chelsea | arsenal)",
        ),
        ("music OR album", "music | album"),
        (
            "tax AND (budget OR chancellor)",
            "tax & (budget | chancellor)",
        ),
        (
            "internet broadband -mobile",
            "internet & broadband & !mobile",
        ),
        ("iraq AND war", "iraq & war"),
        (
            "games AND (console OR nintendo)",
            "games & (console | nintendo)",
        ),
    ] {
        out.push(QuerySpec {
            kind: "boolean",
            ours: plain(ours),
            pg_query: pg.into(),
            pg_filter: String::new(),
            pg_facets: false,
        });
    }
    for (word, entity) in [
        ("election", "tony-blair"),
        ("profits", "microsoft"),
        ("match", "chelsea"),
        ("growth", "united-states"),
        ("film", "hollywood"),
        ("talks", "european-union"),
        ("minister", "gordon-brown"),
        ("police", "london"),
    ] {
        let mut ours = plain(word);
        ours.filter = Some(ArticleFilter {
            entity_ids: vec![entity.into()],
            ..Default::default()
        });
        out.push(QuerySpec {
            kind: "entity",
            ours,
            pg_query: word.into(),
            pg_filter: format!("AND entity_ids @> ARRAY['{entity}']"),
            pg_facets: false,
        });
    }
    for (i, word) in [
        "economy",
        "film",
        "football",
        "election",
        "technology",
        "music",
    ]
    .into_iter()
    .enumerate()
    {
        let (from, to) = (day(100 * i as i64), day(100 * i as i64 + 90));
        let mut ours = plain(word);
        ours.filter = Some(ArticleFilter {
            published_start_time: Some(Timestamp {
                seconds: from,
                nanos: 0,
            }),
            published_end_time: Some(Timestamp {
                seconds: to,
                nanos: 0,
            }),
            ..Default::default()
        });
        out.push(QuerySpec {
            kind: "date",
            ours,
            pg_query: word.into(),
            pg_filter: format!(
                "AND published >= to_timestamp({from}) AND published < to_timestamp({to})"
            ),
            pg_facets: false,
        });
    }
    for word in ["election", "oil", "film", "football", "internet", "bank"] {
        let mut ours = plain(word);
        ours.facets = vec![
            FacetRequest {
                field: FacetField::Entity as i32,
                limit: 5,
            },
            FacetRequest {
                field: FacetField::Source as i32,
                limit: 10,
            },
            FacetRequest {
                field: FacetField::Month as i32,
                limit: 0,
            },
        ];
        out.push(QuerySpec {
            kind: "faceted",
            ours,
            pg_query: word.into(),
            pg_filter: String::new(),
            pg_facets: true,
        });
    }
    out
}

/// Entity ids per article, read back from newsstore for PostgreSQL.
async fn entity_ids(client: &ArticleServiceClient<Channel>) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let mut token = String::new();
    let mut client = client.clone();
    loop {
        let page = client
            .list_articles(proto::ListArticlesRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list works")
            .into_inner();
        for article in page.articles {
            out.insert(
                article.id,
                article.entities.into_iter().map(|e| e.entity_id).collect(),
            );
        }
        token = page.next_page_token;
        if token.is_empty() {
            return out;
        }
    }
}

/// The server's cheapest call, as the floor every figure is relative to.
async fn health_floor(port: u16, calls: usize) -> (f64, f64) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls + 10 {
        let started = Instant::now();
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health works");
        if i >= 10 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

struct Measured {
    p50: f64,
    p99: f64,
    mean: f64,
    per_kind: Vec<(String, f64, f64)>,
}

fn summarise(samples: &[(String, Duration)]) -> Measured {
    let mut all: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    all.sort();
    let mut kinds: Vec<String> = samples.iter().map(|s| s.0.clone()).collect();
    kinds.dedup();
    let per_kind = kinds
        .into_iter()
        .map(|kind| {
            let mut these: Vec<Duration> = samples
                .iter()
                .filter(|s| s.0 == kind)
                .map(|s| s.1)
                .collect();
            these.sort();
            let (p50, p99) = (percentile(&these, 0.5), percentile(&these, 0.99));
            (kind, p50, p99)
        })
        .collect();
    Measured {
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        mean: all.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / all.len().max(1) as f64,
        per_kind,
    }
}

async fn run_ours(
    client: &ArticleServiceClient<Channel>,
    specs: &[QuerySpec],
    repeat: usize,
) -> (Vec<(String, Duration)>, Vec<i64>) {
    let mut client = client.clone();
    let mut samples = Vec::new();
    let mut totals = Vec::new();
    for spec in specs {
        let mut total = 0;
        for run in 0..repeat + 2 {
            let started = Instant::now();
            let response = client
                .search_articles(spec.ours.clone())
                .await
                .expect("search works")
                .into_inner();
            let elapsed = started.elapsed();
            total = response.total_size;
            if run >= 2 {
                samples.push((spec.kind.to_string(), elapsed));
            }
        }
        totals.push(total);
    }
    (samples, totals)
}

/// A PostgreSQL server in a temporary folder, owned by the `postgres` user when run as root.
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    fn find_bin() -> Option<PathBuf> {
        let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        candidates.sort();
        candidates.pop()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn start() -> Postgres {
        let bin = Self::find_bin().expect("PostgreSQL is installed under /usr/lib/postgresql");
        let dir = tempfile::TempDir::new().expect("temp dir");
        let as_postgres = std::env::var("USER").is_ok_and(|u| u == "root")
            || Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0"));
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "chown for postgres failed"
            );
        }
        let pg = Postgres {
            bin,
            port: free_port(),
            dir,
            as_postgres,
        };
        let data = pg.dir.path().join("data");
        let status = pg
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c work_mem=64MB",
            pg.port,
            pg.dir.path().display()
        );
        let status = pg
            .command("pg_ctl")
            .args(["-D"])
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(pg.dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "PostgreSQL did not start");
        pg
    }

    fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

async fn pg_load(
    client: &tokio_postgres::Client,
    docs: &[Doc],
    entities: &HashMap<String, Vec<String>>,
) -> f64 {
    let started = Instant::now();
    client
        .batch_execute(
            "CREATE TABLE articles (
                id text PRIMARY KEY, headline text NOT NULL, body text NOT NULL,
                source text NOT NULL, published timestamptz NOT NULL, entity_ids text[] NOT NULL,
                tsv tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', headline), 'A') ||
                    setweight(to_tsvector('english', body), 'D')) STORED)",
        )
        .await
        .expect("table created");
    for chunk in docs.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO articles (id, headline, body, source, published, entity_ids) VALUES ",
        );
        let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
        for (i, doc) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let n = i * 6;
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, to_timestamp(${}::float8), ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6
            ));
            params.push(Box::new(doc.id.clone()));
            params.push(Box::new(doc.headline.clone()));
            params.push(Box::new(doc.body.clone()));
            params.push(Box::new(doc.source.clone()));
            params.push(Box::new(doc.published as f64));
            params.push(Box::new(entities.get(&doc.id).cloned().unwrap_or_default()));
        }
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client
            .execute(sql.as_str(), &refs)
            .await
            .expect("insert works");
    }
    client
        .batch_execute(
            "CREATE INDEX articles_tsv ON articles USING gin (tsv);
             CREATE INDEX articles_entities ON articles USING gin (entity_ids);
             CREATE INDEX articles_published ON articles (published);",
        )
        .await
        .expect("indexes built");
    client
        .batch_execute("VACUUM ANALYZE articles")
        .await
        .expect("vacuum");
    started.elapsed().as_secs_f64()
}

async fn run_postgres(
    client: &tokio_postgres::Client,
    specs: &[QuerySpec],
    repeat: usize,
    snippets: bool,
) -> (Vec<(String, Duration)>, Vec<i64>) {
    let mut samples = Vec::new();
    let mut totals = Vec::new();
    for spec in specs {
        let top = if snippets {
            format!(
                "SELECT id, ts_headline('english', body, q, 'MaxFragments=1,MaxWords=40,MinWords=20') AS snippet, rank FROM (
                   SELECT id, body, ts_rank(tsv, q) AS rank, q FROM articles, to_tsquery('english', $1) q
                   WHERE tsv @@ q {} ORDER BY rank DESC LIMIT 10) top",
                spec.pg_filter
            )
        } else {
            format!(
                "SELECT id, ts_rank(tsv, q) AS rank FROM articles, to_tsquery('english', $1) q
                 WHERE tsv @@ q {} ORDER BY rank DESC LIMIT 10",
                spec.pg_filter
            )
        };
        let count = format!(
            "SELECT count(*) FROM articles, to_tsquery('english', $1) q WHERE tsv @@ q {}",
            spec.pg_filter
        );
        let facets = [
            format!(
                "SELECT source, count(*) FROM articles, to_tsquery('english', $1) q WHERE tsv @@ q {} GROUP BY source ORDER BY 2 DESC LIMIT 10",
                spec.pg_filter
            ),
            format!(
                "SELECT date_trunc('month', published), count(*) FROM articles, to_tsquery('english', $1) q WHERE tsv @@ q {} GROUP BY 1",
                spec.pg_filter
            ),
            format!(
                "SELECT e, count(*) FROM articles, to_tsquery('english', $1) q, unnest(entity_ids) e WHERE tsv @@ q {} GROUP BY e ORDER BY 2 DESC LIMIT 50",
                spec.pg_filter
            ),
        ];
        let top = client.prepare(&top).await.expect("query prepares");
        let count = client.prepare(&count).await.expect("count prepares");
        let mut prepared_facets = Vec::new();
        for facet in &facets {
            prepared_facets.push(client.prepare(facet).await.expect("facet prepares"));
        }
        let mut total = 0;
        for run in 0..repeat + 2 {
            let started = Instant::now();
            client
                .query(&top, &[&spec.pg_query])
                .await
                .expect("query works");
            if snippets {
                total = client
                    .query_one(&count, &[&spec.pg_query])
                    .await
                    .expect("count works")
                    .get::<_, i64>(0);
            }
            if spec.pg_facets {
                for facet in &prepared_facets {
                    client
                        .query(facet, &[&spec.pg_query])
                        .await
                        .expect("facet works");
                }
            }
            let elapsed = started.elapsed();
            if run >= 2 {
                samples.push((spec.kind.to_string(), elapsed));
            }
        }
        totals.push(total);
    }
    (samples, totals)
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let docs = load_corpus(&args.corpus, args.articles);
    let raw_bytes = common::raw_text_bytes(&docs);
    println!(
        "corpus: {} articles, {:.1} MiB of text",
        docs.len(),
        raw_bytes as f64 / 1048576.0
    );

    let temp = tempfile::TempDir::new().expect("temp dir");
    let data_dir = args
        .data
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let reuse = data_dir.join("store").exists();
    let server = start_server(&data_dir, &[]);
    let client = connect(server.port).await;
    let (acknowledged, searchable) = if reuse {
        println!("reusing the corpus loaded in {}", data_dir.display());
        (f64::NAN, f64::NAN)
    } else {
        ingest(&client, &docs, args.batch, args.loaders).await
    };
    let ingest_rate = docs.len() as f64 / acknowledged;
    if !reuse {
        println!(
            "newsstore ingest: {acknowledged:.1} s ({ingest_rate:.0} articles/s, extraction and durable writes), searchable after {searchable:.1} s"
        );
    }
    let specs = queries();
    let floor = health_floor(server.port, specs.len() * args.repeat).await;
    println!(
        "gRPC floor (health check, same client): p50 {:.2} ms, p99 {:.2} ms",
        floor.0, floor.1
    );
    let (ours, our_totals) = run_ours(&client, &specs, args.repeat).await;
    let ours = summarise(&ours);
    let (peak, rss) = memory_mib(server.child.id());
    let index_bytes = dir_size(&data_dir.join("search"));
    let segments = std::fs::read_to_string(data_dir.join("search/meta.json"))
        .map(|meta| meta.matches("\"segment_id\"").count())
        .unwrap_or(0);
    let store_bytes = dir_size(&data_dir.join("store"));
    println!(
        "newsstore search ({} queries × {}): p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms",
        specs.len(),
        args.repeat,
        ours.p50,
        ours.p99,
        ours.mean
    );
    for (kind, p50, p99) in &ours.per_kind {
        println!("  {kind:<8} p50 {p50:.2} ms  p99 {p99:.2} ms");
    }
    println!(
        "newsstore disk: index {:.1} MiB ({:.2}× raw text, {segments} segments), store {:.1} MiB; memory: peak {peak:.0} MiB, now {rss:.0} MiB",
        index_bytes as f64 / 1048576.0,
        index_bytes as f64 / raw_bytes as f64,
        store_bytes as f64 / 1048576.0
    );

    let mut json = serde_json::json!({
        "articles": docs.len(),
        "raw_text_bytes": raw_bytes,
        "ingest_seconds": acknowledged,
        "ingest_articles_per_second": ingest_rate,
        "searchable_after_seconds": searchable,
        "queries": specs.len(),
        "health_check_p50_ms": floor.0,
        "health_check_p99_ms": floor.1,
        "repeat": args.repeat,
        "newsstore": {
            "p50_ms": ours.p50, "p99_ms": ours.p99, "mean_ms": ours.mean,
            "per_kind": ours.per_kind.iter().map(|(k, p50, p99)| serde_json::json!({"kind": k, "p50_ms": p50, "p99_ms": p99})).collect::<Vec<_>>(),
        },
        "index_bytes": index_bytes,
        "index_segments": segments,
        "store_bytes": store_bytes,
        "server_peak_rss_mib": peak,
    });

    if !args.no_postgres {
        let entities = entity_ids(&client).await;
        let pg = Postgres::start();
        let (pg_client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                pg.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("PostgreSQL accepts connections");
        tokio::spawn(connection);
        let load = pg_load(&pg_client, &docs, &entities).await;
        println!("postgres load + index: {load:.1} s");
        let (plain, _) = run_postgres(&pg_client, &specs, args.repeat, false).await;
        let plain = summarise(&plain);
        let (full, pg_totals) = run_postgres(&pg_client, &specs, args.repeat, true).await;
        let full = summarise(&full);
        let (pg_peak, _) = pg.pid().map_or((0.0, 0.0), memory_mib);
        println!(
            "postgres top-10 by ts_rank: p50 {:.2} ms, p99 {:.2} ms; with ts_headline snippets and count: p50 {:.2} ms, p99 {:.2} ms",
            plain.p50, plain.p99, full.p50, full.p99
        );
        for ((kind, p50, p99), (_, f50, f99)) in plain.per_kind.iter().zip(&full.per_kind) {
            println!(
                "  {kind:<8} p50 {p50:.2} ms  p99 {p99:.2} ms | with snippets p50 {f50:.2} ms  p99 {f99:.2} ms"
            );
        }
        println!(
            "speed-up at p50: {:.1}× over ts_rank alone, {:.1}× over ts_rank with snippets and count",
            plain.p50 / ours.p50,
            full.p50 / ours.p50
        );
        let agree = our_totals
            .iter()
            .zip(&pg_totals)
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "result counts agree on {agree} of {} queries (stemmers and tokenisers differ)",
            specs.len()
        );
        json["postgres"] = serde_json::json!({
            "load_seconds": load,
            "p50_ms": plain.p50, "p99_ms": plain.p99,
            "with_snippets_and_count_p50_ms": full.p50, "with_snippets_and_count_p99_ms": full.p99,
            "postmaster_peak_rss_mib": pg_peak,
            "count_agreement": agree,
        });
        json["speedup_p50"] = serde_json::json!(plain.p50 / ours.p50);
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let path = out.join(format!("search-{}.json", docs.len()));
    let text = serde_json::to_string_pretty(&json).expect("json");
    std::fs::write(&path, text + "\n").expect("results written");
    println!("results: {}", path.display());
}
