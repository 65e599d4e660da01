//! `tally seed-demo`: a small catalog and a customer, so GraphiQL has
//! something to show. Running it again adds nothing.

use entity::products;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionSession,
    TransactionTrait,
};

use super::catalog::{self, NewProduct, VariantSpec};
use super::users::{self, Registration};
use crate::auth::Email;
use crate::error::ApiResult;
use crate::money::Cents;

pub const DEMO_EMAIL: &str = "demo@tally.test";
pub const DEMO_PASSWORD: &str = "demo-password";

type Demo = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    &'static [(&'static str, i64)],
);

const CATALOG: &[Demo] = &[
    (
        "Margherita",
        "Tomato, mozzarella, basil",
        "pizza",
        900,
        &[("Small", 900), ("Large", 1400)],
    ),
    (
        "Pepperoni",
        "Tomato, mozzarella, pepperoni",
        "pizza",
        1100,
        &[("Small", 1100), ("Large", 1600)],
    ),
    (
        "Quattro Formaggi",
        "Four cheeses",
        "pizza",
        1200,
        &[("Small", 1200), ("Large", 1750)],
    ),
    (
        "Veggie Supreme",
        "Peppers, olives, onions, mushrooms",
        "pizza",
        1050,
        &[],
    ),
    (
        "Classic Burger",
        "Beef patty, cheddar, pickles",
        "burgers",
        1000,
        &[],
    ),
    (
        "Chicken Burger",
        "Crispy chicken, slaw",
        "burgers",
        950,
        &[],
    ),
    (
        "Veggie Burger",
        "Black bean patty, avocado",
        "burgers",
        900,
        &[],
    ),
    (
        "Double Smash",
        "Two smashed patties, onions",
        "burgers",
        1350,
        &[],
    ),
    (
        "Caesar Salad",
        "Romaine, parmesan, croutons",
        "salads",
        800,
        &[("Regular", 800), ("Large", 1100)],
    ),
    ("Greek Salad", "Feta, olives, cucumber", "salads", 750, &[]),
    (
        "Quinoa Bowl",
        "Quinoa, roasted vegetables, tahini",
        "salads",
        950,
        &[],
    ),
    (
        "Tiramisu",
        "Mascarpone, espresso, cocoa",
        "desserts",
        600,
        &[],
    ),
    (
        "Chocolate Brownie",
        "Warm, with walnuts",
        "desserts",
        450,
        &[],
    ),
    ("Cheesecake", "New York style", "desserts", 550, &[]),
    (
        "Gelato",
        "Two scoops",
        "desserts",
        500,
        &[("Cup", 500), ("Cone", 550)],
    ),
    (
        "Cola",
        "Chilled can",
        "beverages",
        250,
        &[("Can", 250), ("Bottle", 350)],
    ),
    ("Lemonade", "Fresh, homemade", "beverages", 350, &[]),
    ("Iced Tea", "Peach", "beverages", 300, &[]),
    ("Sparkling Water", "Half litre", "beverages", 200, &[]),
    ("Espresso", "Double shot", "beverages", 250, &[]),
];

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    pub products_created: usize,
    pub customer_created: bool,
}

pub async fn seed<C: ConnectionTrait + TransactionTrait>(db: &C) -> ApiResult<Seeded> {
    let txn = db.begin().await?;
    let mut seeded = Seeded::default();
    for (name, description, category, price, variants) in CATALOG {
        let exists = products::Entity::find()
            .filter(products::Column::Name.eq(*name))
            .count(&txn)
            .await?
            > 0;
        if exists {
            continue;
        }
        let variants = variants
            .iter()
            .map(|(n, p)| VariantSpec::parse(n, Cents(*p)))
            .collect::<ApiResult<_>>()?;
        let product =
            NewProduct::parse(name, description, category, Cents(*price), true, variants)?;
        catalog::create_product(&txn, product).await?;
        seeded.products_created += 1;
    }
    if users::find_by_email(&txn, &Email::parse(DEMO_EMAIL)?)
        .await?
        .is_none()
    {
        let registration = Registration::parse("Demo Customer", DEMO_EMAIL, DEMO_PASSWORD)?;
        users::register(&txn, None, registration).await?;
        seeded.customer_created = true;
    }
    txn.commit().await?;
    Ok(seeded)
}
