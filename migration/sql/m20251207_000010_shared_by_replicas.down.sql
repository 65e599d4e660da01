drop table persisted_queries;
drop table sign_in_addresses;
drop table sign_in_throttles;
drop table server_secrets;
