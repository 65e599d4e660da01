drop trigger users_token_version on users;
drop function users_next_token_version();
alter table users drop column token_version;
