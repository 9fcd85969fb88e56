//! The read-through cache on its own, around an async "query" function, as
//! go-zero's `cachedsql` does around SQL: concurrent reads of one row run
//! the query once, absent rows are remembered for a short negative TTL, and
//! a write invalidates the row so that the next read sees it.
//!
//! ```sh
//! cargo run --example standalone_cache
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared_calls::Outcome;
use shared_calls::cache::{Cache, Fetch, LoadError};

/// A product row.
#[derive(Debug, Clone, PartialEq)]
struct Product {
    id: u64,
    price_cents: u64,
}

/// The database's error (the cache needs it `Clone` to share it).
#[derive(Debug, Clone)]
struct DbError(String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

/// A stand-in database: a table and a query counter.
#[derive(Debug, Default)]
struct Database {
    products: Mutex<HashMap<u64, u64>>,
    queries: AtomicU64,
}

impl Database {
    /// `SELECT id, price_cents FROM products WHERE id = $1`
    async fn select_product(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let products = self
            .products
            .lock()
            .map_err(|_| DbError("poisoned".into()))?;
        Ok(products
            .get(&id)
            .map(|&price_cents| Product { id, price_cents }))
    }

    /// `UPDATE products SET price_cents = $2 WHERE id = $1`
    async fn update_price(&self, id: u64, price_cents: u64) -> Result<(), DbError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.products
            .lock()
            .map_err(|_| DbError("poisoned".into()))?
            .insert(id, price_cents);
        Ok(())
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

/// The products, cached: `Arc<Product>` is cheap to clone to every caller.
#[derive(Debug, Clone)]
struct Products {
    database: Arc<Database>,
    cache: Cache<u64, Arc<Product>, DbError>,
}

impl Products {
    /// The product and how it was found, or `None` if there is no such product.
    async fn get(&self, id: u64) -> Result<Option<(Arc<Product>, Outcome)>, DbError> {
        let database = self.database.clone();
        let load = move || async move {
            Ok(match database.select_product(id).await? {
                Some(product) => Fetch::value(Arc::new(product)),
                // Remembered for the negative TTL: no query per miss.
                None => Fetch::absent(),
            })
        };
        match self.cache.get_or_load(&id, load).await {
            Ok(lookup) => {
                let outcome = lookup.outcome();
                Ok(Some((lookup.into_value(), outcome)))
            }
            Err(LoadError::NotFound) => Ok(None),
            Err(LoadError::Load(error)) => Err(error),
            Err(other) => Err(DbError(other.to_string())),
        }
    }

    /// Writes, then invalidates: the next read loads the new row, and a
    /// read that was loading the old row meanwhile does not store it.
    async fn set_price(&self, id: u64, price_cents: u64) -> Result<(), DbError> {
        self.database.update_price(id, price_cents).await?;
        self.cache.invalidate(&id);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = Arc::new(Database::default());
    database.update_price(7, 1_999).await?;
    let products = Products {
        database: database.clone(),
        cache: Cache::builder()
            .ttl(Duration::from_secs(60))
            .negative_ttl(Duration::from_secs(5))
            .build(),
    };

    // 100 concurrent reads of one product: one query.
    let reads: Vec<_> = (0..100)
        .map(|_| {
            let products = products.clone();
            tokio::spawn(async move { products.get(7).await })
        })
        .collect();
    let mut outcomes = HashMap::<Outcome, u32>::new();
    for read in reads {
        let (product, outcome) = read.await??.ok_or("product 7 is missing")?;
        assert_eq!(product.price_cents, 1_999);
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!(
        "100 concurrent reads of product 7: {} query; {} miss, {} collapsed",
        database.queries(),
        outcomes.get(&Outcome::Miss).unwrap_or(&0),
        outcomes.get(&Outcome::Collapsed).unwrap_or(&0),
    );

    let (product, outcome) = products.get(7).await?.ok_or("product 7 is missing")?;
    println!(
        "read again: {} cents ({outcome}), queries so far: {}",
        product.price_cents,
        database.queries()
    );

    // A write, then the read that must see it.
    products.set_price(7, 2_499).await?;
    let (product, outcome) = products.get(7).await?.ok_or("product 7 is missing")?;
    let price = product.price_cents;
    println!(
        "after the price update and invalidate(&7): {price} cents ({outcome}), queries so far: {}",
        database.queries()
    );
    if price != 2_499 {
        return Err("the read after the write saw the old price".into());
    }

    // An absent product: queried once, then remembered as absent.
    let first = products.get(404).await?;
    let second = products.get(404).await?;
    println!(
        "two reads of a missing product: {:?} and {:?}, queries so far: {}",
        first,
        second,
        database.queries()
    );

    let stats = products.cache.stats();
    println!(
        "reads: 104; queries: {}; cache: {} miss, {} collapsed, {} hit",
        database.queries(),
        stats.misses,
        stats.collapsed,
        stats.hits
    );
    if database.queries() != 3 {
        return Err("expected 3 queries: product 7, product 7 after the write, product 404".into());
    }
    Ok(())
}
