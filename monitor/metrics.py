"""Prometheus metrics of the worker (served by prometheus-client on FINPULSE_WORKER_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.items = Counter("finpulse_items_total", "Items classified and stored", registry=r)
        self.duplicates = Counter(
            "finpulse_duplicates_total", "Items flagged as repeated stories", registry=r
        )
        self.dlq = Counter(
            "finpulse_dlq_total", "Messages sent to the dead-letter topic", ["reason"], registry=r
        )
        self.batches = Counter("finpulse_batches_total", "Micro-batches processed", registry=r)
        self.batch_size = Histogram(
            "finpulse_batch_size",
            "Messages per micro-batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.batch_latency = Histogram(
            "finpulse_batch_seconds",
            "Wall time per micro-batch (decode, model, database, publish, commit)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.model_seconds = Counter(
            "finpulse_model_seconds_total", "Seconds spent in the classifier", registry=r
        )
        self.items_per_second = Gauge("finpulse_items_per_second", "Recent throughput (EWMA)", registry=r)
        self.lag = Gauge(
            "finpulse_consumer_lag", "Messages behind the high watermark", ["partition"], registry=r
        )
        self.lag_total = Gauge(
            "finpulse_consumer_lag_total", "Sum of lag over assigned partitions", registry=r
        )
        self.errors = Counter(
            "finpulse_errors_total", "Batch failures that were retried", ["stage"], registry=r
        )
        self.up = Gauge("finpulse_worker_up", "1 while the worker loop runs", registry=r)
        self.paused = Gauge(
            "finpulse_paused_partitions", "Partitions paused because their fetch fails", registry=r
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        if port > 0:
            start_http_server(port, addr=addr, registry=self.registry)
