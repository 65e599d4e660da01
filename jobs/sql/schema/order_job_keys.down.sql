drop index apalis.order_analytics_job_keys;
