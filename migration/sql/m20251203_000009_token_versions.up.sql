-- A token carries the version of its account it was issued at. Changing
-- the account's password or role moves the version on, so every earlier
-- token is refused from the next request on, whoever made the change: the
-- CLI, the API, or an operator's SQL.
alter table users add column token_version integer not null default 0;

create function users_next_token_version() returns trigger
language plpgsql as $$
begin
    if new.password_hash is distinct from old.password_hash
       or new.role is distinct from old.role then
        new.token_version := old.token_version + 1;
    end if;
    return new;
end
$$;

create trigger users_token_version
    before update of password_hash, role on users
    for each row execute function users_next_token_version();
