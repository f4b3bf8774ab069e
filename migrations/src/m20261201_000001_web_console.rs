//! The web console's small state: named settings (the login token's hash) and the one-time
//! codes that link identities on different channels to one person.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("settings")
                .col(big_integer("id").auto_increment().primary_key())
                .col(string_uniq("key"))
                .col(text("value"))
                .col(timestamp_with_time_zone("updated_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("link_codes")
                .col(big_integer("id").auto_increment().primary_key())
                .col(string_uniq("code"))
                .col(big_integer("person_id"))
                .col(string("channel"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("used_at"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_link_codes_person_id")
                        .from("link_codes", "person_id")
                        .to("persons", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in ["link_codes", "settings"] {
            m.drop_table(Table::drop().table(table).take()).await?;
        }
        Ok(())
    }
}
