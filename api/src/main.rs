use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tally::config::Config;
use tally::domain::{demo, users};
use tally::error::ApiError;
use tally::{db, graphql, server, telemetry};

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
    Worker,
    /// Create the database if needed and apply every migration.
    Migrate,
    /// Print the GraphQL schema (SDL), as checked in at schema.graphql.
    ExportSchema,
    /// Add a demo catalog and customer (safe to run again).
    SeedDemo,
    /// Create an admin, or make an existing account admin with this password.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
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
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => server::serve(config).await,
        Command::Worker => server::work(config).await,
        Command::Migrate => {
            db::connect_and_migrate(&config).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::ExportSchema => unreachable!("handled before start-up"),
        Command::SeedDemo => {
            let orm = db::orm(&db::connect_and_migrate(&config).await?);
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
        Command::CreateAdmin { email, password } => {
            let orm = db::orm(&db::connect_and_migrate(&config).await?);
            let admin = users::ensure_admin(&orm, &email, &password)
                .await
                .map_err(ApiError::into_anyhow)?;
            println!("admin {} (id {}) is ready", admin.email, admin.id);
            Ok(())
        }
    }
}
