//! Request latency of kube-sim with 10,000 stored objects and 100 open watches, through the
//! kube-rs client over loopback HTTP. Memory (RSS) after seeding is printed to stderr.
//!
//! Run: `cargo bench -p kube-sim --bench api`

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const OBJECTS: usize = 10_000;
const WATCHERS: usize = 100;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cm(i: usize) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": format!("cm-{i:05}"), "labels": {"group": format!("g{}", i % 1000), "app": "bench"}},
        "data": {"index": i.to_string(), "payload": "x".repeat(200)}
    }))
    .expect("configmap")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let before = rss_kib();
    let (sim, client, events) = rt.block_on(async {
        let sim = kube_sim::KubeSim::start(kube_sim::Config::default())
            .await
            .expect("start");
        let cfg = kube::Config::new(sim.url().parse().expect("url"));
        let client = kube::Client::try_from(cfg).expect("client");
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        for i in 0..OBJECTS {
            api.create(&PostParams::default(), &cm(i))
                .await
                .expect("seed");
        }
        let events = Arc::new(AtomicU64::new(0));
        for _ in 0..WATCHERS {
            let api = api.clone();
            let events = events.clone();
            let rv = api
                .list_metadata(&ListParams::default().limit(1))
                .await
                .expect("rv")
                .metadata
                .resource_version
                .unwrap_or_default();
            tokio::spawn(async move {
                let mut s = api
                    .watch(&WatchParams::default().timeout(3600), &rv)
                    .await
                    .expect("watch")
                    .boxed();
                while let Some(Ok(_)) = s.next().await {
                    events.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        (sim, client, events)
    });
    let after = rss_kib();
    eprintln!(
        "kube-sim: {} objects stored, {WATCHERS} watches open; RSS {} MiB before seeding, {} MiB after (+{} MiB)",
        sim.object_count(),
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / 1024
    );
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    c.bench_function("get one of 10k", |b| {
        b.iter(|| rt.block_on(api.get("cm-05000")).expect("get"))
    });
    c.bench_function("list by label (10 of 10k)", |b| {
        b.iter(|| {
            rt.block_on(api.list(&ListParams::default().labels("group=g7")))
                .expect("list")
        })
    });
    c.bench_function("list page of 500 (kubectl get)", |b| {
        b.iter(|| {
            rt.block_on(api.list(&ListParams::default().limit(500)))
                .expect("list")
        })
    });
    let mut n = 0u64;
    c.bench_function("merge patch, fanned out to 100 watches", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(api.patch(
                "cm-00042",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"n": n.to_string()}})),
            ))
            .expect("patch")
        })
    });
    let mut k = 0u64;
    c.bench_function("create + delete", |b| {
        b.iter(|| {
            k += 1;
            rt.block_on(async {
                let name = format!("tmp-{k}");
                let mut o = cm(0);
                o.metadata.name = Some(name.clone());
                api.create(&PostParams::default(), &o)
                    .await
                    .expect("create");
                api.delete(&name, &DeleteParams::default())
                    .await
                    .expect("delete");
            })
        })
    });
    eprintln!(
        "kube-sim: watch events delivered: {}; RSS at end {} MiB",
        events.load(Ordering::Relaxed),
        rss_kib() / 1024
    );
    rt.block_on(sim.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
