//! The `tally` command: serve, work, migrate, and the operator's commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tally::config::{Config, Database};
use tally::db::PoolKind;
use tally::db::private::{PrivateServer, Stopped};
use tally::domain::{demo, users};
use tally::error::ApiError;
use tally::startup::{self, Role};
use tally::{db, graphql, telemetry};
use tokio_util::sync::CancellationToken;

/// Tally: a GraphQL backend for food-ordering apps.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API and run post-order workers (the default).
    Serve,
    /// Run post-order workers only, beside a server.
    Worker {
        /// Serve the apalis board from this process too (see BOARD_ADDR).
        #[arg(long)]
        board: bool,
    },
    /// Create the database if needed and apply every migration.
    Migrate,
    /// Print the GraphQL schema (SDL), as checked in at schema.graphql.
    ExportSchema,
    /// Add a demo catalog and customer (safe to run again).
    SeedDemo,
    /// List or retry post-order jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Recompute every figure from the order history (safe while serving).
    RebuildAnalytics,
    /// Create an admin, or make an existing account admin with this password.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
    },
    /// The private PostgreSQL Tally runs when DATABASE_URL is unset.
    Database {
        #[command(subcommand)]
        command: DatabaseCommand,
    },
}

#[derive(Subcommand)]
enum DatabaseCommand {
    /// Print its URL (for psql, say) while a Tally process runs it.
    Url,
    /// Stop it now, unless a Tally process uses it (the last one to stop
    /// stops it anyway; this is for a server a killed process left).
    Stop,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// The newest jobs, optionally of one status.
    List {
        #[arg(long, value_enum, ignore_case = true)]
        status: Option<jobs::admin::JobStatus>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Put a failed job, or every failed job, back in the queue.
    Retry {
        #[arg(required_unless_present = "all_failed")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all_failed: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ExportSchema) = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, config.board_log.clone());
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Database { command } = command {
        return exit(database_command(&config.database, command));
    }
    // held until the runtime is gone: the last process to let go of the
    // private server stops it
    let _private = match &config.database {
        Database::Private { data_dir } => match PrivateServer::open(data_dir, &[]) {
            Ok(server) => Some(server),
            Err(e) => return exit(Err(e.into())),
        },
        Database::Url(_) => None,
    };
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    exit(runtime.block_on(run(command, config)))
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn database_command(database: &Database, command: DatabaseCommand) -> anyhow::Result<()> {
    let Database::Private { data_dir } = database else {
        anyhow::bail!("DATABASE_URL is set: Tally runs no PostgreSQL of its own");
    };
    match command {
        DatabaseCommand::Url => println!("{}", db::url(database)),
        DatabaseCommand::Stop => match PrivateServer::stop_unused(data_dir)? {
            Stopped::Stopped => {
                println!("stopped the private PostgreSQL in {}", data_dir.display())
            }
            Stopped::NotRunning => println!(
                "the private PostgreSQL in {} is not running",
                data_dir.display()
            ),
            Stopped::InUse => anyhow::bail!(
                "Tally processes are using the private PostgreSQL in {}: stop them first",
                data_dir.display()
            ),
        },
    }
    Ok(())
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => run_until_signalled(config, Role::Serve).await,
        Command::Worker { board } => run_until_signalled(config, Role::Worker { board }).await,
        Command::Migrate => {
            db::connect_and_migrate(&config, PoolKind::Commands).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::ExportSchema | Command::Database { .. } => {
            unreachable!("handled before start-up")
        }
        Command::SeedDemo => {
            let orm = db::orm(&db::connect_and_migrate(&config, PoolKind::Commands).await?);
            let seeded = demo::seed(&orm).await.map_err(ApiError::into_anyhow)?;
            println!(
                "demo catalog: {} products added; demo customer {} ({}), password {:?}",
                seeded.products_created,
                demo::DEMO_EMAIL,
                if seeded.customer_created {
                    "created"
                } else {
                    "already there"
                },
                demo::DEMO_PASSWORD
            );
            Ok(())
        }
        Command::Jobs { command } => {
            let orm = db::orm(&db::connect_and_migrate(&config, PoolKind::Commands).await?);
            jobs_command(&orm, command).await
        }
        Command::RebuildAnalytics => {
            let orm = db::orm(&db::connect_and_migrate(&config, PoolKind::Commands).await?);
            let report = jobs::rebuild::rebuild_analytics(&orm).await?;
            println!(
                "rebuilt: {} orders newly counted, {} products changed, {} customer product rows, {} customer category rows",
                report.orders_marked,
                report.products_updated,
                report.customer_product_rows,
                report.customer_category_rows
            );
            Ok(())
        }
        Command::CreateAdmin { email, password } => {
            let orm = db::orm(&db::connect_and_migrate(&config, PoolKind::Commands).await?);
            let admin = users::ensure_admin(&orm, &email, &password)
                .await
                .map_err(ApiError::into_anyhow)?;
            println!("admin {} (id {}) is ready", admin.email, admin.id);
            Ok(())
        }
    }
}

/// Builds the app for `role` and runs it until SIGTERM or Ctrl-C; then it
/// stops taking requests and jobs, finishes running ones and returns.
async fn run_until_signalled(config: Config, role: Role) -> anyhow::Result<()> {
    // listening before the app logs a line: an operator (or a test) may stop
    // it as soon as it does, and a signal with no handler would kill it
    let shutdown = CancellationToken::new();
    startup::stop_on_signal(shutdown.clone());
    startup::build(config, role, shutdown)
        .await?
        .run_until_stopped()
        .await
}

async fn jobs_command(
    db: &sea_orm::DatabaseConnection,
    command: JobsCommand,
) -> anyhow::Result<()> {
    match command {
        JobsCommand::List { status, limit } => {
            let found = jobs::admin::list_jobs(db, status, limit).await?;
            println!(
                "{:<26}  {:<8}  {:>8}  {:<27}  last error",
                "id", "status", "attempts", "order"
            );
            for job in found {
                println!(
                    "{:<26}  {:<8}  {:>8}  {:<27}  {}",
                    job.id,
                    job.status.as_str(),
                    format!("{}/{}", job.attempts, job.max_attempts),
                    job.order_label(),
                    job.last_error.unwrap_or_default()
                );
            }
            Ok(())
        }
        JobsCommand::Retry { id: Some(id), .. } => {
            let retried = jobs::admin::retry_jobs(db, Some(&id)).await?;
            if !retried.unreadable.is_empty() {
                anyhow::bail!(jobs::admin::unreadable_job(&id));
            }
            if retried.put_back.is_empty() {
                anyhow::bail!("no failed job {id}");
            }
            tracing::info!(operator = "cli", job_id = %id, "retried a failed job");
            println!("job {id} is pending again");
            Ok(())
        }
        JobsCommand::Retry { id: None, .. } => {
            let retried = jobs::admin::retry_jobs(db, None).await?;
            tracing::info!(operator = "cli", job_ids = ?retried.put_back, "retried every failed job");
            println!("{} failed job(s) pending again", retried.put_back.len());
            if !retried.unreadable.is_empty() {
                println!(
                    "{} failed job(s) left failed: no worker can read them: {}",
                    retried.unreadable.len(),
                    retried.unreadable.join(", ")
                );
            }
            Ok(())
        }
    }
}
